"""Topic administration: create the topics up front (configured partitions and replication),
and remove what a namespaced run (a benchmark) leaves behind."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.exceptions import TopicError
from streams.settings import Settings


def stream_topics(settings: Settings) -> tuple[str, ...]:
    """The topics the stream worker reads or writes: the four inputs, DLQ, windows.closed."""
    return (*settings.input_topics(), settings.topic_dlq, settings.topic_windows_closed)


def ensure_topics(
    settings: Settings, topics: Iterable[str] | None = None, timeout_s: float = 30.0
) -> list[str]:
    """Create the missing ``topics`` (default: :func:`stream_topics`); return those created.

    Existing topics are kept as they are (their partition count is not changed).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    wanted = list(dict.fromkeys(topics or stream_topics(settings)))
    admin = AdminClient(settings.kafka_client_config())
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise TopicError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}; start it with "
            "`demandcast stack up` or set DEMANDCAST_KAFKA_BOOTSTRAP_SERVERS"
        ) from None
    missing = [t for t in wanted if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                t,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
            )
            for t in missing
        ],
        operation_timeout=timeout_s,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                continue
            raise TopicError(f"cannot create topic {name!r}: {exc}") from None
    return created


def remove_namespace(settings: Settings, client: Any, topics: Iterable[str]) -> None:
    """Delete a run's own Redis keys (``{redis_prefix}:*``) and ``topics``: what a benchmark
    made under :meth:`Settings.namespaced` leaves behind otherwise."""
    from confluent_kafka.admin import AdminClient

    keys = list(client.scan_iter(match=f"{settings.redis_prefix}:*", count=10_000))
    for i in range(0, len(keys), 10_000):
        client.delete(*keys[i : i + 10_000])
    AdminClient(settings.kafka_client_config()).delete_topics(list(topics))
