"""The forecast worker's one-round-trip read against the plain reads, on real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis

from schemas import InventoryEvent, OrderEvent, PromotionEvent
from streams.history.replay import load_events
from streams.ingest.processor import RawRecord, StreamProcessor
from streams.settings import Settings
from streams.store.keys import layout_of
from streams.store.reader import FeatureReader
from streams.store.redis_sink import RedisSink

pytestmark = pytest.mark.integration


async def _no_output(messages: list[tuple[str, bytes | None, bytes]]) -> None:
    return None


async def test_window_inputs_equal_the_plain_reads(isolated: Settings, uci_slice: Path) -> None:
    s = isolated
    orders = [e for _, e in load_events(uci_slice, "uci").events if isinstance(e, OrderEvent)]
    skus = sorted({e.sku for e in orders})
    events: list[OrderEvent | InventoryEvent | PromotionEvent] = list(orders)
    first = events[0].event_time
    events += [
        InventoryEvent(
            event_id="inv-1",
            event_time=first,
            sku=skus[0],
            on_hand=12,
            on_order=3,
            lead_time_days=4.5,
        ),
        PromotionEvent(
            event_id="promo-1",
            event_time=first,
            promotion_id="xmas",
            action="start",
            kind="price_cut",
            skus=[skus[1]],
            discount_depth=0.3,
            planned_start=first,
            planned_end=first + timedelta(days=30),
        ),
    ]
    sink = RedisSink(s.redis_url, layout_of(s), s.redis_kwargs())
    proc = StreamProcessor(s, sink, _no_output)
    topic = {"order": s.topic_orders, "inventory": s.topic_inventory}
    records = [
        RawRecord(topic.get(e.type, s.topic_promotions), 0, i, None, e.to_json())
        for i, e in enumerate(events)
    ]
    for lo in range(0, len(records), 2000):
        await proc.process(records[lo : lo + 2000])
    await sink.close()

    client = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    reader = FeatureReader(client, layout_of(s), script_skus=300)
    wanted = [*skus, "NEVER-SOLD"]
    at = datetime(2010, 12, 20, tzinfo=UTC)
    # a range over a year's end, longer than the data: leading and trailing zeros
    start, end = datetime(2010, 9, 3, 7, tzinfo=UTC), datetime(2011, 1, 20, tzinfo=UTC)
    arrays, state = reader.window_inputs(wanted, start, end, at=at)
    plain = reader.buckets(wanted, start, end, "D", ("units", "revenue_milli"))
    assert arrays.values.shape == (len(wanted), 139, 2)
    assert np.array_equal(arrays.periods, plain.periods)
    assert np.array_equal(arrays.values, plain.values)
    assert arrays.metric("units").sum() > 10_000  # the slice's real orders are there
    assert not arrays.values[-1].any()
    planned = {sku: st.pop("planned_promotions") for sku, st in state.items()}
    assert state == reader.state(wanted, at=at, ref_price_days=None)
    # the promotions planned over [start, end) include the ones active at ``at``
    for sku, st in state.items():
        assert {p["promotion_id"] for p in st["promotions"]} <= {
            p["promotion_id"] for p in planned[sku]
        }
    assert state[skus[0]]["on_hand"] == 12 and state[skus[0]]["lead_time_days"] == 4.5
    assert [p["depth"] for p in state[skus[1]]["promotions"]] == [0.3]
    assert state["NEVER-SOLD"]["last_price"] is None
    client.close()
