"""The chaos stack: an embedded Kafka + Redis of its own (own ports, own state directory),
and the faults done to its services. Nothing here touches the stack the settings name."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

from streams.exceptions import StackError
from streams.settings import Settings
from streams.stack.embedded import EmbeddedStack, _pid_alive, _port_open, _read_pid

DEFAULT_PORTS = (19092, 19093, 16379)
"""Kafka, its controller and Redis of the chaos stack: not the default stack's."""


def chaos_settings(base: Settings, root: Path, ports: tuple[int, int, int]) -> Settings:
    """``base`` pointed at a chaos stack under ``root`` on ``ports``: plaintext, no Redis
    password, an empty model registry (the forecast worker serves its baseline)."""
    kafka, controller, redis_port = ports
    return base.model_copy(
        update={
            "state_dir": root / "stack",
            "stack_kafka_port": kafka,
            "stack_controller_port": controller,
            "stack_redis_port": redis_port,
            "kafka_bootstrap_servers": f"127.0.0.1:{kafka}",
            "kafka_security_protocol": "PLAINTEXT",
            "kafka_sasl_mechanism": None,
            "kafka_sasl_username": None,
            "kafka_sasl_password": None,
            "redis_url": f"redis://127.0.0.1:{redis_port}/0",
            "redis_password": None,
            "model_registry": root / "models",
            "device": "cpu",
        }
    )


class ChaosStack:
    """Start and stop the chaos stack, and kill, restart or roll back its services."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded = EmbeddedStack(settings)

    def up(self) -> None:
        self.embedded.up()

    def down(self) -> None:
        self.embedded.down()

    # --- Redis ---------------------------------------------------------------------------

    @property
    def redis_aof(self) -> Path:
        return self.embedded.redis_dir / "appendonlydir"

    def kill_redis(self) -> None:
        """SIGKILL Redis (what a machine crash does to it) and wait until it is gone."""
        self._kill(self.embedded.redis_pid_file, signal.SIGKILL)

    def stop_redis(self) -> None:
        """SIGTERM Redis (a controlled shutdown: it writes out its append-only file and
        exits) and wait until it is gone."""
        self._kill(self.embedded.redis_pid_file, signal.SIGTERM, timeout_s=60.0)

    def copy_redis_state(self, dest: Path) -> None:
        """Copy Redis's append-only files as they are on disk now, while it runs: a state
        older than what it acknowledges next (a prefix of its writes; a command cut off at
        the end is dropped on load, a script's effects are one MULTI/EXEC)."""
        for _ in range(5):
            if dest.exists():
                shutil.rmtree(dest)
            try:
                shutil.copytree(self.redis_aof, dest)
                return
            except (OSError, shutil.Error):  # a rewrite swapped files under the copy
                time.sleep(0.2)
        raise StackError(f"could not copy Redis's append-only files from {self.redis_aof}")

    def restart_redis(self, state: Path | None = None) -> None:
        """Start Redis again (after :meth:`kill_redis` or :meth:`stop_redis`) on its own
        data directory and append-only file, or from ``state`` (a copy made by
        :meth:`copy_redis_state`) instead of its own files when given; return once it
        answers (its data loaded)."""
        if state is not None:
            shutil.rmtree(self.redis_aof, ignore_errors=True)
            shutil.copytree(state, self.redis_aof)
        self._wait_port_free(self.settings.stack_redis_port)
        self.embedded.up()

    # --- Kafka ---------------------------------------------------------------------------

    def stop_kafka(self) -> None:
        """Stop the broker (SIGTERM: a controlled shutdown), waiting until it is gone."""
        self._kill(self.embedded.kafka_pid_file, signal.SIGTERM, timeout_s=60.0)

    def start_kafka(self) -> None:
        self._wait_port_free(self.settings.stack_kafka_port)
        self.embedded.up()

    @staticmethod
    def _wait_port_free(port: int, timeout_s: float = 30.0) -> None:
        """Until nothing listens on ``port`` (a killed server's forked child, an AOF rewrite
        say, may hold its socket a moment longer than the server itself)."""
        deadline = time.monotonic() + timeout_s
        while _port_open(port) and time.monotonic() < deadline:
            time.sleep(0.1)

    @staticmethod
    def _kill(pid_file: Path, sig: signal.Signals, timeout_s: float = 30.0) -> None:
        pid = _read_pid(pid_file)
        if pid is None or not _pid_alive(pid):
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid):
            with contextlib.suppress(ChildProcessError):  # reap it: it is our child
                os.waitpid(pid, os.WNOHANG)
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout_s
            time.sleep(0.05)
        # and its forked children (an AOF rewrite, say), which share its process group (a
        # few seconds at most: an unreaped zombie would answer forever)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
