"""The updater's audit trail and its lock, both in the registry directory.

The registry keeps only a pointer to the champion; every decision the updater takes
(promoted, rejected, failed: with the trigger, both models' figures, the data range and its
fingerprint) is appended as one JSON line to ``<registry>/decisions.jsonl``. Lines are only
ever appended (``O_APPEND``, one ``write`` per record, then ``fsync``); a line cut short by a
crash is skipped when reading. Undefined figures (NaN) are written as ``null``.

:class:`DecisionLock` is an exclusive ``fcntl.flock`` on ``<registry>/updater.lock``: one
updater decides at a time, the other is told so at once (``UpdaterBusyError``). The kernel
drops the lock when its holder dies, so a killed updater never blocks the next one.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from updater.exceptions import AuditError, UpdaterBusyError

LOG_NAME = "decisions.jsonl"
LOCK_NAME = "updater.lock"


def _strict(value: Any) -> Any:
    """``value`` with NaN and infinite floats as None: every line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


class AuditLog:
    """Append-only JSON lines of the updater's decisions."""

    def __init__(self, registry_dir: str | Path) -> None:
        self.path = Path(registry_dir) / LOG_NAME

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(_strict(record), sort_keys=True, default=str) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # end a line cut short by a crash first
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise AuditError(f"cannot append to the decision log {self.path}: {exc}") from exc

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise AuditError(f"cannot read the decision log {self.path}: {exc}") from exc
        for raw in lines:
            try:
                record = json.loads(raw)
            except ValueError:
                continue  # a line cut short by a crash
            if isinstance(record, dict):
                yield record

    def records(self) -> list[dict[str, Any]]:
        return list(self)


class DecisionLock:
    """``with DecisionLock(registry_dir):`` — held while one updater decides."""

    def __init__(self, registry_dir: str | Path) -> None:
        self.path = Path(registry_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UpdaterBusyError(
                f"another updater (pid {holder}) is deciding on the registry "
                f"{self.path.parent}; only one runs at a time, try again when it is done"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DecisionLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


__all__ = ["LOCK_NAME", "LOG_NAME", "AuditLog", "DecisionLock"]
