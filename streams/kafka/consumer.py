"""Consumer helpers: one way to make a consumer, :func:`take` what is pending, a group's lag."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.settings import Settings


def new_consumer(settings: Settings, group_id: str, config: Mapping[str, Any] | None = None) -> Any:
    """A confluent-kafka consumer of the configured cluster in ``group_id`` that commits
    only when told (``enable.auto.commit`` off); ``config`` adds or overrides settings."""
    from confluent_kafka import Consumer

    return Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": group_id,
            "enable.auto.commit": False,
            **(config or {}),
        }
    )


def take(consumer: Any, max_messages: int, timeout_s: float) -> list[Any]:
    """Wait up to ``timeout_s`` for one message, then add what is already fetched, up to
    ``max_messages``.

    ``Consumer.consume(n, timeout)`` returns only when it has ``n`` messages or the timeout
    has passed, so a short burst waits out the whole timeout; this returns as soon as
    anything arrives.
    """
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(max_messages - 1, 0)] if max_messages > 1 else [first]


def group_lag(settings: Settings, group_id: str, topic: str) -> int:
    """Messages of ``topic`` that ``group_id`` has not committed yet."""
    from confluent_kafka import TopicPartition

    probe = new_consumer(settings, group_id)
    try:
        meta = probe.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        lag = 0
        for tp in probe.committed(parts, timeout=10):
            _, high = probe.get_watermark_offsets(tp, timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        probe.close()
