"""The store update of one batch runs in Redis while the worker's event loop is busy with
the next one (the overlap ``streams.ingest.app``'s ingest agent relies on), on real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from streams.ingest.processor import RawRecord, StreamProcessor
from streams.settings import Settings
from streams.store.keys import layout_of
from streams.store.redis_sink import RedisSink

from ...unit.streams.helpers import order

pytestmark = pytest.mark.integration


async def _no_output(messages: list[tuple[str, bytes | None, bytes]]) -> None:
    return None


async def test_a_batch_is_applied_while_the_event_loop_prepares_the_next(
    isolated: Settings,
) -> None:
    s = isolated
    sink = RedisSink(s.redis_url, layout_of(s), s.redis_kwargs())
    proc = StreamProcessor(s, sink, _no_output)
    check = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    records = [RawRecord(s.topic_orders, 0, i, b"A", order(str(i), i).to_json()) for i in range(3)]
    try:
        await proc.process(records[:1])  # connected, script loaded
        prepared = await proc.prepare(records[1:])
        assert prepared is not None
        commit = asyncio.ensure_future(proc.commit(prepared))
        await asyncio.sleep(0)  # what the ingest agent does before preparing the next batch
        time.sleep(1.0)  # the event loop's thread busy, as while preparing a batch
        applied = check.hget(f"{s.redis_prefix}:stats", "events")
        await commit
    finally:
        check.close()
        await sink.close()
    assert applied == b"3", "the script ran in Redis while the loop's thread was busy"
