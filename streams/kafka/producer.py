"""The one Kafka producer of the project: back-pressure, delivery errors and flush.

Every process that writes to Kafka (replay, the stream worker's ``windows.closed`` and dead
letters, the forecast worker, the latency benchmark) goes through :class:`Producer`, a thin
wrapper of confluent-kafka's producer:

- **back-pressure**: when librdkafka's local queue is full (``BufferError``), a send waits
  for it to drain and tries again, instead of failing;
- **delivery errors**: librdkafka reports only failed deliveries
  (``delivery.report.only.error``), so a delivered message costs no Python callback; the
  failures land in a :class:`DeliveryReport`, the producer's own or one a caller passes
  with the messages whose fate it needs to know;
- **flush**: :meth:`Producer.deliver` waits for the broker's acknowledgements and raises a
  :class:`~streams.exceptions.DeliveryError` when any message was refused or the wait
  timed out; :meth:`Producer.flush` waits without judging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from streams.exceptions import DeliveryError
from streams.settings import Settings


def producer_config(settings: Settings) -> dict[str, Any]:
    """An idempotent producer that partitions keys the way Java and Faust clients do."""
    return {
        **settings.kafka_client_config(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "compression.type": "none",  # aiokafka (Faust) reads lz4 only with extra wheels
        "partitioner": "murmur2_random",
        "queue.buffering.max.messages": 200_000,
    }


class DeliveryReport:
    """The delivery failures of the messages sent with it (a librdkafka delivery callback)."""

    __slots__ = ("errors",)

    def __init__(self) -> None:
        self.errors: list[str] = []

    def __call__(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))

    def take(self) -> list[str]:
        """The failures reported so far; the report starts afresh."""
        errors, self.errors = self.errors, []
        return errors


class Producer:
    """A confluent-kafka producer with back-pressure and delivery-error tracking.

    ``config`` is the client configuration (see :func:`producer_config`); ``what`` names the
    messages in errors (``"events"``: "3 events failed delivery; first: ...").
    """

    def __init__(self, config: Mapping[str, Any], *, what: str = "messages") -> None:
        from confluent_kafka import Producer as KafkaProducer

        self.what = what
        self.report = DeliveryReport()
        """Failures of the messages sent without a report of their own."""
        self.client = KafkaProducer(
            {**config, "on_delivery": self.report, "delivery.report.only.error": True}
        )

    def send(
        self, topic: str, value: bytes, key: bytes | None, report: DeliveryReport | None = None
    ) -> None:
        """Hand one message to librdkafka, waiting while its local queue is full."""
        while True:
            try:
                self.client.produce(topic, value=value, key=key, on_delivery=report)
                return
            except BufferError:
                self.client.poll(0.05)

    async def send_all(
        self, messages: Iterable[tuple[str, bytes | None, bytes]], report: DeliveryReport
    ) -> None:
        """Hand ``(topic, key, value)`` messages to librdkafka from the event loop: while the
        local queue is full it drains on a thread, not on the loop's."""
        loop = asyncio.get_running_loop()
        produce = self.client.produce
        for topic, key, value in messages:
            while True:
                try:
                    produce(topic, value=value, key=key, on_delivery=report)
                    break
                except BufferError:
                    await loop.run_in_executor(None, self.client.poll, 0.1)

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports (and free the queue of delivered messages)."""
        return int(self.client.poll(timeout_s))

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for every message; return how many are still waiting."""
        return int(self.client.flush(timeout_s))

    def deliver(self, timeout_s: float, report: DeliveryReport | None = None) -> None:
        """:meth:`flush`, then raise :class:`DeliveryError` if a message is still waiting or
        any sent with ``report`` (default: the producer's own) was refused."""
        self._check(self.flush(timeout_s), report, timeout_s)

    async def deliver_async(self, timeout_s: float, report: DeliveryReport) -> None:
        """:meth:`deliver` with the wait on a thread, off the event loop."""
        loop = asyncio.get_running_loop()
        left = await loop.run_in_executor(None, self.client.flush, timeout_s)
        self._check(int(left), report, timeout_s)

    def _check(self, left: int, report: DeliveryReport | None, timeout_s: float) -> None:
        """Raise :class:`DeliveryError` for ``left`` messages not delivered in ``timeout_s``
        or for the failures in ``report`` (default: the producer's own)."""
        errors = (report or self.report).take()
        if left:
            raise DeliveryError(f"{left} {self.what} were not delivered within {timeout_s:g} s")
        if errors:
            raise DeliveryError(f"{len(errors)} {self.what} failed delivery; first: {errors[0]}")
