"""Consumed offsets recorded with the features (docs/feature-store.md, "Offsets"), in the
memory sink, and the seek rule on assignment."""

from __future__ import annotations

from typing import NamedTuple

from streams.ingest.fastpath import rewind_targets
from streams.store.keys import KeyLayout
from streams.store.plan import next_offsets, offset_op, parse_offsets

from .helpers import order, processor, record, settings


class TP(NamedTuple):
    topic: str
    partition: int


def test_next_offsets_is_one_past_the_highest_offset_of_each_partition() -> None:
    s = settings()
    recs = [
        record(s, order("a", 1), partition=0, offset=7),
        record(s, order("b", 1), partition=1, offset=3),
        record(s, order("c", 1), partition=0, offset=5),
    ]
    assert next_offsets(recs) == {(s.topic_orders, 0): 8, (s.topic_orders, 1): 4}
    assert offset_op(KeyLayout("u"), {}) == []
    assert parse_offsets({"a:b:2": 9}) == {("a:b", 2): 9}


async def test_the_processor_records_offsets_with_the_batch_and_never_moves_them_back() -> None:
    s = settings()
    proc, sink, _ = processor(s)
    field = f"{s.topic_orders}:0"
    await proc.process([record(s, order(f"e{i}", i), offset=i) for i in range(5)])
    assert await sink.offsets() == {field: 5}
    # a redelivery of older offsets (all duplicates): applied as duplicates, offset kept
    await proc.process([record(s, order(f"e{i}", i), offset=i) for i in range(3)])
    assert await sink.offsets() == {field: 5}
    assert proc.counts["duplicates"] == 3
    # part duplicates, part new: the script's second round records the offset
    await proc.process([record(s, order(f"e{i}", i), offset=i) for i in range(4, 9)])
    assert await sink.offsets() == {field: 9}
    assert proc.counts["events"] == 9


async def test_a_batch_of_dead_letters_only_records_its_offsets() -> None:
    s = settings()
    proc, sink, _ = processor(s)
    await proc.process([record(s, b"{not json", offset=o) for o in (10, 11)])
    assert proc.counts["dead_letters"] == 2 and proc.counts["events"] == 0
    assert await sink.offsets() == {f"{s.topic_orders}:0": 12}


def test_seek_back_only_where_the_store_is_behind_kafka() -> None:
    behind, ahead, equal, fresh, unknown = (TP("o", p) for p in range(5))
    committed = {behind: 100, ahead: 50, equal: 70, fresh: None, unknown: 30}
    stored = {("o", 0): 40, ("o", 1): 60, ("o", 2): 70, ("o", 3): 10}
    # a partition the store does not name has nothing of it in the store: from 0
    assert rewind_targets(committed, stored) == {behind: 40, unknown: 0}
    assert rewind_targets(committed, {}) == {behind: 0, ahead: 0, equal: 0, unknown: 0}
    assert rewind_targets({}, stored) == {}
    # a store written before offsets were stored: Kafka's committed offsets stand
    assert rewind_targets(committed, None) == {}


async def test_a_store_with_features_but_no_offsets_predates_them() -> None:
    s = settings()
    proc, sink, _ = processor(s)
    assert await sink.offsets() == {}  # an empty store: nothing held
    await proc.process([record(s, order("a", 1), offset=3)])
    del sink.hashes[sink.layout.offsets]
    assert await sink.offsets() is None


async def test_an_oversized_message_dead_letters_into_a_message_the_broker_takes() -> None:
    from schemas import DeadLetter, decode
    from schemas._base import MAX_MESSAGE_BYTES
    from streams.ingest.processor import DEAD_LETTER_ORIGINAL_BYTES

    s = settings()
    proc, _, emitted = processor(s)
    big = b'{"event_id":"' + b"x" * MAX_MESSAGE_BYTES + b'"}'
    await proc.process([record(s, big, offset=0)])
    ((topic, _, value),) = emitted
    letter = decode(DeadLetter, value)
    assert topic == s.topic_dlq and letter.truncated
    assert letter.original == big[:DEAD_LETTER_ORIGINAL_BYTES]
    assert "exceeds" in letter.reason
    assert len(value) < 1_000_000  # librdkafka's default message.max.bytes
