"""The embedded stack against the real Apache Kafka and Redis it runs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.exceptions import StackError
from streams.settings import Settings
from streams.stack.embedded import EmbeddedStack, _pid_alive

pytestmark = pytest.mark.integration


def test_broker_round_trips_a_message(stack_settings: Settings) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    conf = stack_settings.kafka_client_config()
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    producer = Producer({**conf, "enable.idempotence": True})
    for i in range(10):
        producer.produce(topic, key=f"sku{i % 3}".encode(), value=f'{{"n": {i}}}'.encode())
    assert producer.flush(30) == 0
    consumer = Consumer(
        {**conf, "group.id": topic, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer.subscribe([topic])
    seen = []
    for _ in range(100):
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            seen.append(bytes(msg.value() or b""))
        if len(seen) == 10:
            break
    consumer.close()
    assert sorted(seen) == sorted(f'{{"n": {i}}}'.encode() for i in range(10))


def test_redis_answers(stack_settings: Settings) -> None:
    client = redis.Redis.from_url(stack_settings.redis_url, **stack_settings.redis_kwargs())
    key = f"test:{uuid.uuid4().hex}"
    assert client.ping()
    client.set(key, "1", ex=10)
    assert client.get(key) == b"1"


@pytest.mark.skipif(shutil.which("kcat") is None, reason="Debian's kcat is not installed")
def test_kcat_lists_the_broker(stack_settings: Settings) -> None:
    out = subprocess.run(
        ["kcat", "-b", stack_settings.kafka_bootstrap_servers, "-L"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "1 brokers" in out.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_lifecycle_up_is_idempotent_and_down_leaves_nothing(
    tmp_path: Path, stack_settings: Settings
) -> None:
    settings = Settings(
        state_dir=tmp_path / "stack",
        cache_dir=stack_settings.cache_dir,
        stack_kafka_port=_free_port(),
        stack_controller_port=_free_port(),
        stack_redis_port=_free_port(),
        stack_kafka_heap_mb=256,
    )
    stack = EmbeddedStack(settings)
    try:
        first = {s.name: s for s in stack.up()}
        assert all(s.running for s in first.values())
        assert first["kafka"].version.startswith("4.")
        again = {s.name: s for s in stack.up()}
        assert {n: s.pid for n, s in again.items()} == {n: s.pid for n, s in first.items()}
        # A second stack on the same ports but another state directory must refuse.
        intruder = EmbeddedStack(settings.model_copy(update={"state_dir": tmp_path / "other"}))
        with pytest.raises(StackError, match=f"port {settings.stack_redis_port} in use"):
            intruder.up()
    finally:
        stopped = stack.down()
    assert len(stopped) == 2
    for status in first.values():
        assert not _pid_alive(status.pid)
    assert not any(s.running for s in stack.status())
