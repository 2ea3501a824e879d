"""Session fixtures shared by every test.

Integration tests get ``stack_settings``: settings that point at a running Kafka and Redis.
If the services named by the ``DEMANDCAST_*`` environment answer (a compose stack, a
user's cluster, an embedded stack already up) they are reused; otherwise the embedded
stack is started under a temporary state directory and stopped at the end of the session.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import Settings
from streams.stack.health import check_services

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
UCI_LOG = SHARED_DATA / "online_retail" / "online_retail.csv.gz"


def pytest_report_header(config: pytest.Config) -> list[str]:
    from streams.stack.embedded import kafka_version, redis_version

    settings = Settings()
    return [
        f"demandcast stack: Apache Kafka {kafka_version()} (embedded, KRaft), "
        f"redis-server {redis_version()}; bootstrap {settings.kafka_bootstrap_servers}, "
        f"redis {settings.redis_url}"
    ]


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """Settings pointing at a live Kafka + Redis (reused, or the embedded stack)."""
    from streams.stack.embedded import EmbeddedStack

    settings = Settings()
    if check_services(settings).ok:
        yield settings
        return
    state = Path(tempfile.mkdtemp(prefix="demandcast-test-stack-"))
    embedded = Settings(
        state_dir=state,
        stack_kafka_port=settings.stack_kafka_port,
        stack_controller_port=settings.stack_controller_port,
        stack_redis_port=settings.stack_redis_port,
        kafka_bootstrap_servers=f"127.0.0.1:{settings.stack_kafka_port}",
        redis_url=f"redis://127.0.0.1:{settings.stack_redis_port}/0",
        cache_dir=settings.cache_dir,
    )
    stack = EmbeddedStack(embedded)
    try:
        stack.up()
    except Exception:
        stack.down()
        raise
    for st in stack.status():
        print(f"\nstarted embedded {st.name} {st.version} on port {st.port} (pid {st.pid})")
    try:
        yield embedded
    finally:
        stack.down()


@pytest.fixture
def isolated(stack_settings: Settings) -> Iterator[Settings]:
    """Per-test settings: topics, consumer groups and Redis keys of the test's own (the
    keys are deleted afterwards)."""
    import redis

    settings = stack_settings.namespaced(f"t{uuid.uuid4().hex[:8]}")
    yield settings
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    keys = list(client.scan_iter(match=f"{settings.redis_prefix}:*", count=5000))
    for i in range(0, len(keys), 5000):
        client.delete(*keys[i : i + 5000])
    client.close()


@pytest.fixture
def uci_slice(tmp_path: Path) -> Path:
    """The first 20,000 lines of the real UCI log, copied into a temporary directory."""
    import gzip

    if not UCI_LOG.exists():
        pytest.fail(
            f"the real UCI log is missing at {UCI_LOG} (shared/data is part of the checkout)"
        )
    out = tmp_path / "online_retail_head.csv"
    with gzip.open(UCI_LOG, "rt", newline="") as src, out.open("w", newline="") as dst:
        for i, line in enumerate(src):
            if i > 20_000:
                break
            dst.write(line)
    return out


os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")
