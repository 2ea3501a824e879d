"""Whatever the batching, redelivery and order, the store equals the linear recomputation."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from schemas.events import ClickEvent, OrderEvent
from streams.history.check import compare, recompute
from streams.store.keys import KeyLayout, epoch_ms

from .fakes import FakeRedis
from .helpers import click, order, processor, record, settings

SKUS = ["A", "B", "C"]

events_strategy = st.lists(
    st.one_of(
        st.builds(
            lambda m, s, q, p: ("o", m, s, q, p),
            st.integers(0, 3000),
            st.sampled_from(SKUS),
            st.integers(-5, 20).filter(bool),
            st.sampled_from([0.1, 0.85, 2.55, 4.95, 12.75]),
        ),
        st.builds(
            lambda m, s, a: ("c", m, s, a, None),
            st.integers(0, 3000),
            st.sampled_from(SKUS),
            st.sampled_from(["view", "cart", "purchase", "remove_from_cart"]),
        ),
    ),
    min_size=1,
    max_size=60,
)


def build(spec):
    out: list[OrderEvent | ClickEvent] = []
    for i, (kind, minutes, sku, a, b) in enumerate(spec):
        if kind == "o":
            out.append(order(f"e{i}", minutes, sku=sku, qty=a, price=b))
        else:
            out.append(click(f"e{i}", minutes, sku=sku, action=a))
    return out


@hsettings(max_examples=60, deadline=None)
@given(spec=events_strategy, data=st.data())
def test_any_delivery_gives_the_linear_result(spec, data) -> None:
    events = build(spec)
    s = settings(grace_seconds=0)
    proc, sink, _ = processor(s)
    # a delivery: the log in partition order, cut into batches, some batches delivered again
    records = [record(s, e, partition=int(e.sku == "B"), offset=i) for i, e in enumerate(events)]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=6)))
    batches = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    replays = data.draw(st.lists(st.integers(0, len(batches) - 1), max_size=4))
    delivery = batches + [batches[i] for i in replays]

    async def run() -> None:
        for batch in delivery:
            await proc.process(batch)

    asyncio.run(run())
    result = compare(recompute([(epoch_ms(e.event_time), e) for e in events]), reader_of(sink))
    assert result.ok, result.examples
    assert result.matching > 0 or all(
        e.type == "click" and e.action == "remove_from_cart" for e in events
    )
    assert int(sink.hashes["u:stats"]["events"]) == len(events)


def reader_of(sink):
    from streams.store.reader import FeatureReader

    return FeatureReader(FakeRedis(sink), KeyLayout("u"))


async def test_the_check_detects_lost_and_double_counted_buckets() -> None:
    s = settings()
    proc, sink, _ = processor(s)
    events = [
        order("1", 0, sku="A", qty=2),
        order("2", 0, sku="B", qty=3),
        order("3", 200, sku="C", qty=1),
    ]
    await proc.process([record(s, e) for e in events])
    expected = recompute([(epoch_ms(e.event_time), e) for e in events])
    assert compare(expected, reader_of(sink)).ok
    sink.hashes["u:fh:A:201103"]["units:0109"] = "1"  # lost one unit
    sink.hashes["u:fh:B:201103"]["units:0109"] = "6"  # counted twice
    del sink.hashes["u:fd:C:201103"]  # the whole day bucket is gone
    result = compare(expected, reader_of(sink))
    assert not result.ok
    assert result.by_freq["h"] == {"matching": 1, "lost": 1, "double_counted": 1, "mismatched": 0}
    # the daily buckets of A and B were left alone; C's is gone
    assert result.by_freq["D"] == {"matching": 2, "lost": 1, "double_counted": 0, "mismatched": 0}
    assert {ex["sku"] for ex in result.examples} == {"A", "B", "C"}
