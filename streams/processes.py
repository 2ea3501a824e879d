"""demandcast commands run as child processes with given settings (demo, benchmarks)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from streams.settings import Settings


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class ChildCommand:
    """``python -m demandcast COMMAND`` with ``settings`` in its environment, logging to a file
    (or nowhere); stopped with SIGTERM, then SIGKILL after ``grace_s``."""

    def __init__(
        self, settings: Settings, *args: str, log: Path | None = None, grace_s: float = 30.0
    ) -> None:
        self.name = " ".join(args)
        self.log = log
        self.grace_s = grace_s
        out = log.open("ab") if log is not None else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "demandcast", *args],
                env=settings.as_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        finally:
            if log is not None and not isinstance(out, int):
                out.close()

    def check(self) -> None:
        """Raise if the process has exited."""
        code = self.proc.poll()
        if code is not None:
            where = f"; see {self.log}" if self.log else ""
            raise RuntimeError(f"`demandcast {self.name}` exited with {code}{where}")

    def peak_rss_mb(self) -> float | None:
        """Peak resident memory so far (VmHWM), while the process runs."""
        return _rss_mb(self.proc.pid)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)
