"""``demandcast stack up --secure --tls``: Kafka over SASL_SSL and Redis over TLS only, with
a CA of the stack's own. Clients without TLS are refused; the stream worker (aiokafka with
an SSL context), ``replay`` and ``tail`` (librdkafka with the CA) and the store's Redis
connections work with the settings in ``credentials.env``."""

from __future__ import annotations

import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streams.kafka.admin import ensure_topics
from streams.settings import Settings
from streams.stack.embedded import EmbeddedStack
from streams.stack.processes import ChildProcess

from ..live import stats, wait_for
from .test_secure_stack import _cli, _read_env, stack_base

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_stack() -> Iterator[tuple[Settings, Settings]]:
    root = Path(tempfile.mkdtemp(prefix="demandcast-tls-stack-"))
    base = stack_base(root)
    started = time.monotonic()
    up = _cli(base, "stack", "up", "--secure", "--tls", timeout=240)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"\nTLS stack up in {time.monotonic() - started:.1f}s")
        env = _read_env(base.state_dir / "credentials.env")
        assert env["DEMANDCAST_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["DEMANDCAST_REDIS_URL"].startswith("rediss://")
        fields = {k.removeprefix("DEMANDCAST_").lower(): v for k, v in env.items()}
        client = Settings.model_validate(base.model_dump() | fields)
        yield base, client
    finally:
        EmbeddedStack(base).down()
        shutil.rmtree(root, ignore_errors=True)  # its credentials with it


def test_clients_without_tls_are_refused_and_with_it_served(
    tls_stack: tuple[Settings, Settings], uci_slice: Path, tmp_path: Path
) -> None:
    base, client = tls_stack
    key = base.state_dir / "tls" / "server.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # Kafka: SASL without TLS on the SASL_SSL listener
    no_tls = {**client.kafka_client_config(), "security.protocol": "SASL_PLAINTEXT"}
    with pytest.raises(KafkaException):
        AdminClient({**no_tls, "log_level": 0, "socket.timeout.ms": 3000}).list_topics(timeout=4)
    # Redis: plaintext on the TLS port, even with the right credentials
    plain_url = client.redis_url.replace("rediss://", "redis://")
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(
            plain_url, username=client.redis_username, password="x" * 8, socket_timeout=3
        ).ping()
    ok = redis.Redis.from_url(client.redis_url, **client.redis_kwargs())
    assert ok.ping()
    ok.close()
    assert _cli(client, "doctor").returncode == 0

    s = client.namespaced(f"tls{uuid.uuid4().hex[:6]}")
    ensure_topics(s, s.all_topics())
    log = tmp_path / "worker.log"
    with ChildProcess.demandcast(s, "worker", "--loglevel", "info", log=log) as worker:
        replay = _cli(s, "replay", str(uci_slice), "--format", "uci", "--limit", "2000")
        assert replay.returncode == 0, (replay.stdout + replay.stderr)[-2000:]
        wait_for(
            lambda: stats(s).get("events", 0) > 1500,
            150,
            "the replayed events in the feature store, over TLS",
            worker.proc,
            log,
        )
        worker.check()
        tail = _cli(
            s, "tail", "windows.closed", "--from-beginning", "--max", "1", "--idle-timeout", "60"
        )
        assert tail.returncode == 0 and tail.stdout.strip(), tail.stderr[-2000:]
    secrets = [v for k, v in _read_env(base.state_dir / "credentials.env").items() if "PASS" in k]
    for text in (log.read_text(errors="replace"), replay.stdout + replay.stderr, tail.stderr):
        for secret in secrets:
            assert secret not in text
