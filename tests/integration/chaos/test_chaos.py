"""``demandcast chaos`` end to end: one short scenario on a chaos stack of its own (its own
ports and data directory; the stack the other tests use is not touched)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streams.chaos.scenarios import FIELDS

from ...conftest import UCI_LOG

pytestmark = pytest.mark.integration


def test_redis_rolled_back_under_a_live_worker_loses_and_doubles_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "chaos"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "demandcast",
            "chaos",
            "redis-rollback",
            "--json",
            "--log",
            str(UCI_LOG),
            "--events",
            "6000",
            "--ports",
            "29092,29093,26379",
            "--workdir",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)
    assert report["ok"] and report["problems"] == {}
    (result,) = report["scenarios"]
    assert tuple(result) == FIELDS
    assert result["name"] == "redis-rollback"
    assert result["events_in"] == result["applied"] == 6000
    assert result["lost"] == 0 and result["double"] == 0
    assert result["windows_closed"] > 0 and result["windows_without_forecasts"] == 0
    assert result["recovery_s"] is not None and result["peak_lag"] > 0
    worker_log = (workdir / "redis-rollback" / "worker.log").read_text()
    assert "below Kafka's committed" in worker_log  # the restarted worker sought back
