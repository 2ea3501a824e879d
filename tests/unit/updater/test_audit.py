from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from updater.audit import LOG_NAME, AuditLog, DecisionLock
from updater.exceptions import AuditError, UpdaterBusyError


def test_appends_and_reads_back_in_order(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    assert log.records() == []
    log.append({"outcome": "rejected", "n": 1})
    log.append({"outcome": "promoted", "n": 2})
    assert [r["n"] for r in AuditLog(tmp_path).records()] == [1, 2]


def test_undefined_figures_are_null(tmp_path: Path) -> None:
    AuditLog(tmp_path).append({"figures": {"champion": {"mase": float("nan"), "wql": 0.5}}})
    raw = (tmp_path / LOG_NAME).read_text()
    assert "NaN" not in raw and '"mase": null' in raw


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    log.append({"n": 1})
    with (tmp_path / LOG_NAME).open("ab") as f:
        f.write(b'{"n": 2, "outc')
    log.append({"n": 3})
    assert [r["n"] for r in log.records()] == [1, 3]


def test_an_unwritable_log_is_an_audit_error(tmp_path: Path) -> None:
    (tmp_path / LOG_NAME).mkdir()
    with pytest.raises(AuditError, match="cannot append"):
        AuditLog(tmp_path).append({"n": 1})


def test_one_of_two_threads_decides(tmp_path: Path) -> None:
    inside = threading.Event()
    release = threading.Event()
    outcomes: list[str] = []

    def holder() -> None:
        with DecisionLock(tmp_path):
            outcomes.append("decided")
            inside.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    assert inside.wait(10)
    with pytest.raises(UpdaterBusyError, match="another updater"):
        DecisionLock(tmp_path).acquire()
    outcomes.append("busy")
    release.set()
    t.join(10)
    assert outcomes == ["decided", "busy"]
    with DecisionLock(tmp_path):  # free again once the holder is done
        pass


def test_a_second_process_is_refused_and_a_dead_holder_frees_the_lock(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from updater.audit import DecisionLock\n"
        f"lock = DecisionLock({str(tmp_path)!r}); lock.acquire()\n"
        "print('held', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"held"
        with pytest.raises(UpdaterBusyError, match=f"pid {child.pid}"):
            DecisionLock(tmp_path).acquire()
    finally:
        child.kill()
        child.wait(10)
    with DecisionLock(tmp_path):
        pass
