"""Carriers: one Faust event for a partition's fetched records, acked as all of them."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.ingest.fastpath import BatchMessage, records_of


class FakeConsumer:
    """The ack bookkeeping of faust's Consumer that carriers touch."""

    def __init__(self, committed: int | None = None) -> None:
        self._committed_offset: defaultdict[Any, int | None] = defaultdict(lambda: committed)
        self._acked_index: defaultdict[Any, set[int]] = defaultdict(set)
        self._acked: defaultdict[Any, list[int]] = defaultdict(list)
        self._n_acked = 0
        self._waiting_for_ack = None
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: True))
        self.acked_messages: list[Any] = []

    def ack(self, message) -> bool:  # what faust's Consumer.ack does for one message
        tp = message.tp
        self._acked_index[tp].add(message.offset)
        self._acked[tp].append(message.offset)
        self._n_acked += 1
        self.acked_messages.append(message)
        return True


def carrier(offsets, committed=None):
    tp = TP("orders", 2)
    records = [
        SimpleNamespace(topic="orders", partition=2, offset=o, key=b"k", value=b"v")
        for o in offsets
    ]
    msg = BatchMessage("orders", 2, offsets[-1], 0.0, 0, None, None, b"", None, 0, 0, tp)
    msg.records = records
    return msg


def test_acking_a_carrier_acks_every_offset_it_carries() -> None:
    consumer = FakeConsumer()
    msg = carrier([10, 11, 12, 14])
    msg.incref()
    assert msg.ack(consumer) is True
    tp = TP("orders", 2)
    assert sorted(consumer._acked[tp]) == [10, 11, 12, 14]
    assert consumer._n_acked == 4
    assert consumer.acked_messages == [msg]  # the carrier itself went through Consumer.ack


def test_offsets_below_the_committed_one_are_not_acked_again() -> None:
    consumer = FakeConsumer(committed=12)
    msg = carrier([10, 11, 12, 13])
    msg.incref()
    msg.ack(consumer)
    assert sorted(consumer._acked[TP("orders", 2)]) == [12, 13]


def test_records_of_carriers_and_plain_events() -> None:
    msg = carrier([1, 2, 3])
    assert [r.offset for r in records_of(SimpleNamespace(message=msg))] == [1, 2, 3]
    plain = SimpleNamespace(topic="orders", offset=7)
    assert records_of(SimpleNamespace(message=plain)) == [plain]
