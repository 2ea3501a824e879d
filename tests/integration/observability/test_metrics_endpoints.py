"""The stream worker's and forecast worker's ``/metrics`` scraped while a replayed slice of
the real UCI log goes through them: the lag, the counters and the latency histogram move."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.history.replay import replay
from streams.kafka.admin import ensure_topics
from streams.settings import Settings

from ..forecast.test_forecast_worker import _drained
from ..live import forecast_worker, running_worker, wait_for

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def scrape(port: int) -> Samples:
    status, text = _get(port, "/metrics")
    assert status == 200, f"/metrics on {port}: {status}"
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def lags(samples: Samples, topic: str) -> dict[str, float]:
    return {
        dict(ls)["partition"]: v
        for (n, ls), v in samples.items()
        if n == "demandcast_consumer_lag" and dict(ls)["topic"] == topic
    }


def test_metrics_move_as_a_replayed_slice_is_processed(
    isolated: Settings, uci_slice: Path, tmp_path: Path
) -> None:
    wport, fport = _free_port(), _free_port()
    s = isolated.model_copy(
        update={
            "model_registry": tmp_path / "empty-registry",  # the baseline serves
            "forecast_max_pending_windows": 10_000,
            "batch_max_events": 500,  # small fetches: a backlog shows as lag between them
            "worker_metrics_port": wport,
            "forecaster_metrics_port": fport,
            "metrics_host": "127.0.0.1",
        }
    )
    ensure_topics(s, s.all_topics())
    split = datetime(2010, 12, 3, tzinfo=UTC)
    first = replay(s, uci_slice, "uci", end=split, progress=False).events_produced
    log = tmp_path / "worker.log"
    with running_worker(s, log) as proc:
        # the backlog is there before the worker starts: its lag is seen above zero
        wait_for(lambda: _get(wport, "/healthz")[0] == 200, 60, "/healthz", proc, log)
        seen_lag = 0.0
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            samples = scrape(wport)
            seen_lag = max(seen_lag, *lags(samples, s.topic_orders).values(), 0.0)
            if total(samples, "demandcast_events_consumed_total") >= first:
                break
            time.sleep(0.1)
        assert seen_lag > 0, "the lag of the backlog was never above zero"
        assert _get(wport, "/readyz")[0] == 200, _get(wport, "/readyz")

        with forecast_worker(s) as fw:
            assert fw.health is not None and fw.health.port == fport
            wait_for(lambda: _drained(s, fw, first), 180, "the first part forecast", proc, log)
            a_worker, a_fc = scrape(wport), scrape(fport)
            status, body = _get(fport, "/readyz")
            assert status == 200, body
            assert "model: ok (baseline" in body or "model: ok" in body

            end = datetime(2010, 12, 6, tzinfo=UTC)
            second = replay(s, uci_slice, "uci", start=split, end=end, progress=False)
            assert second.events_produced > 0
            wait_for(
                lambda: _drained(s, fw, first + second.events_produced),
                180,
                "the second part forecast",
                proc,
                log,
            )
            # the worker's lag is recorded after each batch, the forecaster's after each step
            wait_for(
                lambda: all(v == 0 for v in lags(scrape(wport), s.topic_orders).values()),
                30,
                "the worker's lag back to zero",
            )
            b_worker, b_fc = scrape(wport), scrape(fport)
            version = fw.holder.current.version

    # the stream worker: consumed, applied, script durations and windows closed all moved
    for name in (
        "demandcast_events_consumed_total",
        "demandcast_events_applied_total",
        "demandcast_store_script_duration_seconds_count",
        "demandcast_store_script_duration_seconds_sum",
        "demandcast_windows_closed_total",
    ):
        assert 0 < total(a_worker, name) < total(b_worker, name), name
    produced = first + second.events_produced
    assert total(b_worker, "demandcast_events_consumed_total") == produced
    applied = total(b_worker, "demandcast_events_applied_total", topic=s.topic_orders)
    assert applied + total(b_worker, "demandcast_dead_letters_total") <= produced
    assert applied > 0.9 * produced
    assert set(lags(b_worker, s.topic_orders)) <= {str(p) for p in range(s.partitions)}
    assert total(b_worker, "demandcast_ready", process="worker") == 1

    # the forecast worker: windows, forecasts, the latency histogram, its lag, the model
    for name in (
        "demandcast_window_closes_consumed_total",
        "demandcast_windows_forecast_total",
        "demandcast_forecasts_published_total",
        "demandcast_forecast_latency_seconds_count",
        "demandcast_forecast_latency_seconds_sum",
    ):
        assert 0 < total(a_fc, name) < total(b_fc, name), name
    buckets = {
        dict(ls)["le"]: v
        for (n, ls), v in b_fc.items()
        if n == "demandcast_forecast_latency_seconds_bucket"
    }
    assert buckets["+Inf"] == total(b_fc, "demandcast_forecast_latency_seconds_count")
    assert lags(b_fc, s.topic_windows_closed), "the forecaster reports its lag"
    assert all(v == 0 for v in lags(b_fc, s.topic_windows_closed).values())
    assert total(b_fc, "demandcast_serving_model_info", version=version) == 1
    assert total(b_fc, "demandcast_ready", process="forecaster") == 1
    assert total(b_worker, "demandcast_windows_closed_total") > 0
