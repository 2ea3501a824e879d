"""The producer wrapper without a broker: a message that cannot be delivered is reported,
to the report it was sent with, and ``deliver`` says so."""

from __future__ import annotations

import pytest

from streams.exceptions import DeliveryError
from streams.kafka.producer import DeliveryReport, Producer

NOWHERE = {"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 100, "log_level": 0}


def test_a_refused_message_fails_deliver_with_the_count_and_the_first_error() -> None:
    producer = Producer(NOWHERE, what="events")
    producer.send("t", b"v", b"k")
    with pytest.raises(DeliveryError, match=r"1 events failed delivery; first: .*timed out"):
        producer.deliver(10)
    producer.deliver(1)  # reported once: the producer's report starts afresh


async def test_failures_go_to_the_report_the_messages_were_sent_with() -> None:
    producer = Producer(NOWHERE)
    own = DeliveryReport()
    await producer.send_all([("t", b"k", b"v"), ("t", None, b"w")], own)
    with pytest.raises(DeliveryError, match="2 messages failed delivery"):
        await producer.deliver_async(10, own)
    assert producer.report.take() == []
