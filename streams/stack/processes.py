"""Child processes run with given settings: the workers in the demo, the benchmarks and the
integration tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.exceptions import ProcessError
from streams.settings import Settings


def proc_status_mb(pid: int | None, field: str = "VmHWM") -> float | None:
    """A memory figure of a running process from ``/proc/PID/status``, in MB: ``VmHWM``
    (peak resident memory) or ``VmRSS`` (resident now); None when it cannot be read."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class ChildProcess:
    """``argv`` with ``settings`` in its environment, output to ``log`` (or nowhere);
    stopped with SIGTERM, then SIGKILL after ``grace_s``. Usable as a context manager."""

    def __init__(
        self,
        settings: Settings,
        argv: Sequence[str],
        *,
        log: Path | None = None,
        grace_s: float = 30.0,
    ) -> None:
        self.name = " ".join(argv[1:3]) if len(argv) > 1 else argv[0]
        self.log = log
        self.grace_s = grace_s
        out = log.open("ab") if log is not None else None
        try:
            self.proc = subprocess.Popen(
                list(argv),
                env=settings.as_env(),
                stdout=out if out is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        finally:
            if out is not None:
                out.close()

    @classmethod
    def demandcast(
        cls, settings: Settings, *args: str, log: Path | None = None, grace_s: float = 30.0
    ) -> ChildProcess:
        """``python -m demandcast ARGS`` (a worker, the forecaster, ...)."""
        child = cls(settings, [sys.executable, "-m", "demandcast", *args], log=log, grace_s=grace_s)
        child.name = "demandcast " + " ".join(args)
        return child

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check(self) -> None:
        """Raise if the process has exited."""
        code = self.proc.poll()
        if code is not None:
            where = f"; see {self.log}" if self.log else ""
            raise ProcessError(f"`{self.name}` exited with {code}{where}")

    def peak_rss_mb(self) -> float | None:
        return proc_status_mb(self.proc.pid)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def quiet_collector() -> None:
    """Tune the garbage collector for a worker that allocates many short-lived objects
    per batch: what exists now (modules, the framework, a loaded model) is frozen out of
    the collector's scans, and young collections run 100 times less often. Call it once,
    after start-up."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(70_000, 20, 50)
