"""Scale-out (issue 17, item 4): two stream workers in one consumer group and two forecast
workers in another, on the real broker and Redis. The input partitions are shared by the
stream workers (nothing applied twice, the consistency check clean), ``windows.closed``
by the forecast workers (every changed SKU of every closed window forecast exactly once,
by one of them)."""

from __future__ import annotations

import re
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from schemas import Forecast, WindowClosed, decode
from streams.history.check import compare, recompute, store_skus
from streams.history.replay import load_events, produce_events
from streams.kafka.admin import ensure_topics
from streams.serving.lag import forecaster_lag
from streams.serving.worker import ForecastWorker
from streams.settings import Settings
from streams.store.keys import layout_of
from streams.store.reader import FeatureReader

from ..live import consume_all, forecast_worker, running_worker, stats, wait_for

pytestmark = pytest.mark.integration


def _assigned(log: Path) -> int:
    found = re.findall(r"partitions assigned: (\d+)", log.read_text()) if log.exists() else []
    return int(found[-1]) if found else 0


def _windows_closed_of(fw: ForecastWorker, s: Settings) -> set[int]:
    return {p for t, p in set(fw._assigned) if t == s.topic_windows_closed}


def test_two_stream_workers_and_two_forecast_workers_share_their_partitions(
    isolated: Settings, uci_slice: Path, tmp_path: Path
) -> None:
    s = isolated.model_copy(
        update={
            "model_registry": tmp_path / "empty-registry",  # the baseline: quick to serve
            "forecast_max_pending_windows": 10_000,  # no coalescing: one forecast per window
            "batch_max_events": 2000,
        }
    )
    ensure_topics(s, s.all_topics())
    events = load_events(uci_slice, "uci").events
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = [
        s.model_copy(update={"worker_group_instance_id": f"{s.app_id}-w{i}"}) for i in (1, 2)
    ]
    forecasters = [
        s.model_copy(update={"forecaster_group_instance_id": f"{s.app_id}-f{i}"}) for i in (1, 2)
    ]
    with ExitStack() as stack:
        procs = [
            stack.enter_context(running_worker(w, log))
            for w, log in zip(workers, logs, strict=True)
        ]
        fws = [stack.enter_context(forecast_worker(f)) for f in forecasters]
        # both members of each group hold partitions before the replay: the steady state
        # of a scaled-out deployment (a rebalance mid-replay is chaos worker-join's)
        wait_for(
            lambda: (
                all(_windows_closed_of(fw, s) for fw in fws)
                and set().union(*(_windows_closed_of(fw, s) for fw in fws))
                == set(range(s.partitions))
            ),
            90,
            "both forecast workers to share windows.closed",
        )
        for proc, log in zip(procs, logs, strict=True):

            def assigned(log: Path = log) -> bool:
                return _assigned(log) > 0

            wait_for(assigned, 90, "the stream workers' partitions", proc, log)
        time.sleep(3.0)  # the first worker's rebalance after the second one joined
        shares = [_windows_closed_of(fw, s) for fw in fws]
        assert not (shares[0] & shares[1]), "a windows.closed partition held by both"

        produce_events(s, events)
        wait_for(
            lambda: stats(s).get("events", 0) >= len(events) and forecaster_lag(s) == 0,
            120,
            "the slice applied and every window forecast",
            procs[1],
            logs[1],
        )
        for proc, log in zip(procs, logs, strict=True):
            assert proc.poll() is None, log.read_text()[-3000:]
        windows_each = [fw.stats.windows for fw in fws]
        coalesced = sum(fw.stats.coalesced for fw in fws)

    s_stats = stats(s)
    assert s_stats["events"] == len(events)
    assert s_stats.get("duplicates", 0) == 0, "an event delivered to both stream workers"
    client = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    try:
        layout = layout_of(s)
        check = compare(
            recompute(events), FeatureReader(client, layout), extra_skus=store_skus(client, layout)
        )
    finally:
        client.close()
    assert check.ok, check.examples[:5]
    assert all(_assigned(log) > 0 for log in logs)

    assert coalesced == 0
    messages = consume_all(s, s.topic_windows_closed)
    # windows.closed is keyed by input partition ("{topic}:{partition}"): the keys' hashes may
    # leave a partition of it unused, so a worker forecasts windows exactly when it holds a
    # partition that carries some (a worker holding only unused ones idles: a known limit)
    used = {m.partition() for m in messages}
    busy = [bool(share & used) for share in shares]
    assert [n > 0 for n in windows_each] == busy, (windows_each, shares, used)
    closed = [decode(WindowClosed, m.value()) for m in messages]
    expected = {(w.window.end, sku) for w in closed for sku in w.skus}
    forecasts = [decode(Forecast, m.value()) for m in consume_all(s, s.topic_forecasts)]
    got = Counter((f.window.end, f.sku) for f in forecasts)
    assert expected and set(got) == expected, "every changed SKU of every closed window"
    assert max(got.values()) == 1, "exactly one forecast per SKU per window"
