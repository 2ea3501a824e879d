"""Does the Kafka and Redis named by the settings answer? Used by `demandcast doctor`,
the compose health checks and the test fixture that reuses a running stack."""

from __future__ import annotations

from dataclasses import dataclass

from streams.settings import Settings, mask_url


@dataclass(frozen=True)
class Health:
    kafka: str | None
    """None when the brokers answered, else the reason."""
    redis: str | None
    """None when Redis answered, else the reason."""

    @property
    def ok(self) -> bool:
        return self.kafka is None and self.redis is None


def check_services(settings: Settings, timeout_s: float = 3.0) -> Health:
    """Ask Kafka for its metadata and Redis for a PING, each within ``timeout_s``."""
    from confluent_kafka.admin import AdminClient

    redis_reason = check_redis(settings, timeout_s)
    kafka_reason: str | None = None
    conf = {
        **settings.kafka_client_config(),
        "socket.timeout.ms": int(timeout_s * 1000),
        "log_level": 0,  # the reason is reported below, not as librdkafka log spam
    }
    try:
        metadata = AdminClient(conf).list_topics(timeout=timeout_s)
        if not metadata.brokers:
            kafka_reason = f"{settings.kafka_bootstrap_servers}: no broker in the metadata"
    except Exception as exc:
        kafka_reason = f"{settings.kafka_bootstrap_servers}: {exc}"
    return Health(kafka=kafka_reason, redis=redis_reason)


def check_redis(settings: Settings, timeout_s: float = 3.0) -> str | None:
    """None when Redis answers a PING within ``timeout_s``, else the reason."""
    import redis

    try:
        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=timeout_s, **settings.redis_kwargs()
        )
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return f"{mask_url(settings.redis_url)}: {exc}"
    return None
