"""The updater process's endpoints: alive at once, not ready without a champion."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from streams.settings import Settings
from updater.cycle import run_forever

from ..live import wait_for
from .test_metrics_endpoints import _free_port, _get, scrape, total

pytestmark = pytest.mark.integration


def test_updater_serves_health_and_metrics(isolated: Settings, tmp_path: Path) -> None:
    port = _free_port()
    s = isolated.model_copy(
        update={
            "model_registry": tmp_path / "models",
            "updater_metrics_port": port,
            "metrics_host": "127.0.0.1",
            "updater_poll_seconds": 0.2,
        }
    )
    stop = threading.Event()
    thread = threading.Thread(target=run_forever, args=(s, stop), daemon=True)
    thread.start()
    try:
        wait_for(lambda: _get(port, "/healthz")[0] == 200, 30, "the updater's /healthz")
        wait_for(lambda: "feature store: ok" in _get(port, "/readyz")[1], 30, "a poll")
        status, body = _get(port, "/readyz")
        assert status == 503 and "champion: not ready" in body, body
        samples = scrape(port)
        assert total(samples, "demandcast_ready", process="updater") == 0
        assert ("demandcast_updater_cycles_total", frozenset({("outcome", "idle")})) in samples
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert _get(port, "/healthz")[0] == 0, "the server stops with the loop"
