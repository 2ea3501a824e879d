"""The stream worker against the real Kafka and Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from confluent_kafka import Producer

from schemas import DeadLetter, WindowClosed, decode
from streams.history.check import check_log
from streams.history.replay import replay
from streams.kafka.admin import ensure_topics
from streams.settings import Settings

from ..live import consume_all, feature_snapshot, running_worker, stats, wait_for

pytestmark = pytest.mark.integration


def test_replay_through_a_live_worker_matches_the_linear_recomputation(
    isolated: Settings, uci_slice: Path, tmp_path: Path
) -> None:
    s = isolated
    log = tmp_path / "worker.log"
    first = replay(s, uci_slice, "uci", progress=False)
    assert first.events_produced > 19_000 and first.rows_read == 20_000
    assert first.rejected  # the real log has non-products and zero-price lines in it
    with running_worker(s, log) as proc:
        wait_for(
            lambda: stats(s).get("events", 0) >= first.events_produced,
            120,
            "the first replay to be in Redis",
            proc,
            log,
        )
        result = check_log(s, uci_slice, "uci")
        assert result.ok, result.examples
        assert result.matching > 10_000 and result.skus > 1_000
        before = feature_snapshot(s)

        second = replay(s, uci_slice, "uci", progress=False)
        assert second.events_produced == first.events_produced
        wait_for(
            lambda: stats(s).get("duplicates", 0) >= second.events_produced,
            120,
            "the second replay to be recognised as duplicates",
            proc,
            log,
        )
    after = feature_snapshot(s)
    assert after == before
    final = stats(s)
    assert final["events"] == first.events_produced
    assert check_log(s, uci_slice, "uci").ok

    # the command line: exit 0 when Redis agrees, 1 once a bucket is counted twice
    cli = [
        sys.executable,
        "-m",
        "demandcast",
        "check",
        "features",
        "--log",
        str(uci_slice),
        "--format",
        "uci",
        "--json",
    ]
    ok = subprocess.run(cli, env=s.as_env(), capture_output=True, timeout=120)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["matching"] == result.matching
    client = redis.Redis.from_url(s.redis_url)
    key = next(client.scan_iter(match=f"{s.redis_prefix}:fh:*", count=1000))
    field = next(f for f in client.hkeys(key) if isinstance(f, bytes) and f.startswith(b"units:"))
    client.hincrby(key, field, 1)
    client.close()
    bad = subprocess.run(cli, env=s.as_env(), capture_output=True, timeout=120)
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["double_counted"] == 1 and report["lost"] == 0

    closed = [decode(WindowClosed, m.value()) for m in consume_all(s, s.topic_windows_closed)]
    assert len(closed) == final["windows_closed"] > 0
    assert all(
        w.window.end.timestamp() - w.window.start.timestamp() == s.window_seconds for w in closed
    )
    assert {w.partition for w in closed} <= set(range(s.partitions))


def test_bad_input_goes_to_the_dead_letter_topic(isolated: Settings, tmp_path: Path) -> None:
    s = isolated
    ensure_topics(s)
    producer = Producer(s.kafka_client_config())
    good = (
        b'{"type":"order","event_id":"g1","event_time":"2011-01-01T10:00:00Z",'
        b'"order_id":"1","sku":"A","quantity":2,"unit_price":1.5}'
    )
    for value in (b"{not json", b'{"event_id":"x"}', good):
        producer.produce(s.topic_orders, key=b"A", value=value)
    producer.flush(30)
    log = tmp_path / "worker.log"
    with running_worker(s, log) as proc:
        wait_for(
            lambda: stats(s).get("events", 0) == 1 and stats(s).get("dead_letters") == 2,
            90,
            "one event and two dead letters",
            proc,
            log,
        )
        assert proc.poll() is None  # bad input did not crash the worker
    letters = [decode(DeadLetter, m.value()) for m in consume_all(s, s.topic_dlq)]
    assert sorted(dl.original for dl in letters) == sorted([b"{not json", b'{"event_id":"x"}'])
    assert {dl.source_topic for dl in letters} == {s.topic_orders}
    assert all("invalid OrderEvent" in dl.reason for dl in letters)


def test_a_killed_worker_resumes_without_loss_or_double_counting(
    isolated: Settings, uci_slice: Path, tmp_path: Path
) -> None:
    # a short session timeout: the killed member must leave the group before the new
    # worker can be given its partitions
    s = isolated.model_copy(update={"batch_max_events": 500, "kafka_session_timeout_seconds": 10})
    log = tmp_path / "worker.log"
    produced = replay(s, uci_slice, "uci", progress=False).events_produced
    with running_worker(s, log) as proc:
        wait_for(lambda: stats(s).get("events", 0) >= 3_000, 120, "some progress", proc, log)
        os.kill(proc.pid, signal.SIGKILL)  # no commit, no goodbye
        proc.wait()
    assert stats(s).get("events", 0) < produced
    with running_worker(s, log) as proc:
        wait_for(lambda: stats(s).get("events", 0) >= produced, 120, "the rest", proc, log)
    assert stats(s)["events"] == produced
    result = check_log(s, uci_slice, "uci")
    assert result.ok, result.examples
