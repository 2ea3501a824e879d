"""Helpers of the integration tests on the live path: a stream worker in a subprocess,
a forecast worker on a thread, polling, reading the stats, the features and whole topics
back."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from streams.serving.worker import ForecastWorker
from streams.settings import Settings
from streams.stack.processes import ChildProcess
from streams.store.keys import layout_of


@contextmanager
def running_worker(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``demandcast worker`` in a subprocess, stopped with SIGTERM (SIGKILL if stuck)."""
    with ChildProcess.demandcast(settings, "worker", "--loglevel", "info", log=log) as child:
        yield child.proc


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> Any:
    """Poll ``predicate`` until it is truthy; fail with the worker log tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.25)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n--- worker log ---\n{tail}")


def stats(settings: Settings) -> dict[str, int]:
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    try:
        raw = client.hgetall(layout_of(settings).stats)
    finally:
        client.close()
    return {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in raw.items()}


def feature_snapshot(settings: Settings) -> dict[str, dict[bytes, bytes]]:
    """Every bucket and state hash under the test's prefix."""
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    try:
        out: dict[str, dict[bytes, bytes]] = {}
        for pattern in ("fh", "fd", "s"):
            for key in client.scan_iter(match=f"{settings.redis_prefix}:{pattern}:*", count=5000):
                out[bytes(key).decode()] = client.hgetall(key)  # type: ignore[assignment]
        return out
    finally:
        client.close()


def consume_all(settings: Settings, topic: str, timeout: float = 10.0) -> list[Any]:
    """Every message currently in ``topic`` (a throwaway consumer group)."""
    import uuid

    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages = []
    idle_until = time.monotonic() + timeout
    try:
        while time.monotonic() < idle_until:
            batch = consumer.consume(1000, timeout=1.0)
            for msg in batch:
                if msg.error() is None:
                    messages.append(msg)
            if batch:
                idle_until = min(idle_until, time.monotonic() + 3.0)
            elif messages:
                break
    finally:
        consumer.close()
    return messages


@contextmanager
def forecast_worker(settings: Settings) -> Iterator[ForecastWorker]:
    """The forecast worker on a thread of the test process."""
    worker = ForecastWorker(settings)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(60)
        worker.close()
