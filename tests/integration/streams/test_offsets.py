"""Consumed offsets in Redis, written by the store script with the features, and the
worker's seek back to them after Redis lost acknowledged writes (docs/feature-store.md,
"Offsets"), on the real Redis and Kafka."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import redis

from streams.history.check import check_log
from streams.history.replay import replay
from streams.ingest.processor import RawRecord, StreamProcessor
from streams.settings import Settings
from streams.store.keys import layout_of
from streams.store.memory_sink import MemorySink
from streams.store.redis_sink import RedisSink

from ...unit.streams.helpers import order
from ..live import feature_snapshot, running_worker, stats, wait_for

pytestmark = pytest.mark.integration


async def _no_output(messages: list[tuple[str, bytes | None, bytes]]) -> None:
    return None


async def test_the_store_script_keeps_the_highest_next_offset_as_the_memory_sink_does(
    isolated: Settings,
) -> None:
    s = isolated
    layout = layout_of(s)
    sink = RedisSink(s.redis_url, layout, s.redis_kwargs())
    memory = MemorySink(layout)
    on_redis = StreamProcessor(s, sink, _no_output)
    in_memory = StreamProcessor(s, memory, _no_output)

    def rec(i: int, partition: int = 0, value: bytes | None = None) -> RawRecord:
        body = value if value is not None else order(f"e{partition}-{i}", i).to_json()
        return RawRecord(s.topic_orders, partition, i, b"A", body)

    batches = [
        [rec(i) for i in range(5)],  # -> 5
        [rec(i, 1) for i in range(10, 13)],  # another partition -> 13
        [rec(i) for i in range(2)],  # older offsets (redelivered): stays 5
        [rec(i) for i in range(3, 8)],  # part duplicates: the second round records 8
        [rec(i, value=b"{bad") for i in (8, 9)],  # dead letters only: 10
    ]
    check = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    seen = []
    try:
        for batch in batches:
            await on_redis.process(batch)
            await in_memory.process(batch)
            seen.append(_held(check, layout.offsets))
            assert seen[-1] == await memory.offsets()
    finally:
        check.close()
        await sink.close()
    f0, f1 = f"{s.topic_orders}:0", f"{s.topic_orders}:1"
    assert [x.get(f0) for x in seen] == [5, 5, 5, 8, 10]
    assert [x.get(f1) for x in seen] == [None, 13, 13, 13, 13]
    assert on_redis.counts == in_memory.counts
    assert on_redis.counts["events"] == 5 + 3 + 3 and on_redis.counts["dead_letters"] == 2


SNAPSHOT_LUA = """
local out = {}
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  out[#out + 1] = {key, redis.call('PTTL', key), redis.call('DUMP', key)}
end
return out
"""


def _held(client: redis.Redis, key: str) -> dict[str, int]:
    raw: dict[bytes, bytes] = client.hgetall(key)  # type: ignore[assignment]
    return {k.decode(): int(v) for k, v in raw.items()}


def _snapshot(client: redis.Redis, prefix: str) -> list[tuple[bytes, int, bytes]]:
    """Every key under the prefix with its TTL, in one atomic step (a script): a state of
    the store between two store scripts, as a restart from an older file would give."""
    raw: list[list[Any]] = client.eval(SNAPSHOT_LUA, 0, f"{prefix}:*")
    return [(bytes(key), int(pttl), bytes(dump)) for key, pttl, dump in raw]


def _restore(client: redis.Redis, prefix: str, snapshot: list[tuple[bytes, int, bytes]]) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=5000))
    if keys:
        client.delete(*keys)
    pipe = client.pipeline(transaction=True)
    for key, pttl, dump in snapshot:
        pipe.restore(key, max(pttl, 0), dump)
    pipe.execute()


def test_a_worker_restarted_on_a_rolled_back_redis_reads_the_lost_events_again(
    isolated: Settings, uci_slice: Path, tmp_path: Path
) -> None:
    s = isolated.model_copy(update={"batch_max_events": 500, "kafka_session_timeout_seconds": 10})
    log = tmp_path / "worker.log"
    produced = replay(s, uci_slice, "uci", progress=False).events_produced
    client = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    layout = layout_of(s)
    try:
        with running_worker(s, log) as proc:
            wait_for(lambda: stats(s).get("events", 0) >= 4_000, 120, "some progress", proc, log)
            snapshot = _snapshot(client, s.redis_prefix)
            wait_for(lambda: stats(s).get("events", 0) >= produced, 120, "the rest", proc, log)
        # stopped cleanly: Kafka holds the committed offsets of everything
        clean = feature_snapshot(s)
        _restore(client, s.redis_prefix, snapshot)
        lost = produced - stats(s)["events"]
        assert lost > 1_000, "the snapshot is older than the end of the replay"
        assert _held(client, layout.offsets), "the snapshot holds offsets"
        with running_worker(s, log) as proc:
            wait_for(
                lambda: stats(s).get("events", 0) >= produced, 120, "the lost events", proc, log
            )
            os.kill(proc.pid, signal.SIGKILL)  # nothing more to do; no goodbye needed
            proc.wait()
        final = stats(s)
    finally:
        client.close()
    assert final["events"] == produced  # nothing lost, nothing counted twice
    assert final["rewound"] >= lost  # the worker read again what Redis had lost
    assert feature_snapshot(s) == clean
    result = check_log(s, uci_slice, "uci")
    assert result.ok, result.examples
    assert "below Kafka's committed" in log.read_text()
