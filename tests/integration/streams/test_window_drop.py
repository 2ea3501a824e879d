"""A published window is forgotten by the SKUs it was published with, on real Redis: a late
SKU applied meanwhile keeps it open, and is published after."""

from __future__ import annotations

import pytest
import redis

from streams.ingest.processor import StreamProcessor
from streams.settings import Settings
from streams.store.keys import layout_of
from streams.store.redis_sink import RedisSink

from ...unit.streams.helpers import Emitted, at, late_sku_while_publishing

pytestmark = pytest.mark.integration


async def test_a_late_sku_applied_while_its_window_is_published_is_published_after(
    isolated: Settings,
) -> None:
    s = isolated.model_copy(update={"grace_seconds": 0})
    sink = RedisSink(s.redis_url, layout_of(s), s.redis_kwargs())
    emitted = Emitted()
    proc = StreamProcessor(s, sink, emitted)
    check = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    try:
        closed = await late_sku_while_publishing(proc, s, emitted)
        assert [(c.window.start, c.skus) for c in closed] == [(at(0), ["A"]), (at(0), ["E"])]
        start = int(at(0).timestamp() * 1000)
        layout = layout_of(s)
        assert not check.exists(layout.window_skus(s.topic_orders, 0, start))
        assert check.zscore(layout.open_windows(s.topic_orders, 0), start) is None
    finally:
        await sink.close()
        check.close()


async def test_dropping_windows_of_thousands_of_skus_keeps_only_the_unpublished(
    isolated: Settings,
) -> None:
    s = isolated
    layout = layout_of(s)
    sink = RedisSink(s.redis_url, layout, s.redis_kwargs())
    check = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    skus = [f"S{i:05d}" for i in range(2500)]
    windows = {0: skus, 3_600_000: skus[:10]}
    try:
        for start, members in windows.items():
            check.sadd(layout.window_skus("orders", 1, start), *members, "LATE")
            check.zadd(layout.open_windows("orders", 1), {str(start): start})
        await sink.drop_windows([("orders", 1, start, m) for start, m in windows.items()])
        for start in windows:
            assert check.smembers(layout.window_skus("orders", 1, start)) == {b"LATE"}
        assert len(check.zrange(layout.open_windows("orders", 1), 0, -1)) == 2
        await sink.drop_windows([("orders", 1, 0, ["LATE"]), ("orders", 1, 3_600_000, [])])
        assert not check.exists(layout.window_skus("orders", 1, 0))
        assert check.zrange(layout.open_windows("orders", 1), 0, -1) == [b"3600000"]
    finally:
        await sink.close()
        check.close()
