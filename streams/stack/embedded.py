"""The embedded stack: a single-node Apache Kafka (KRaft) and a Redis server as local
processes, for development, the demo and the integration tests.

Kafka runs from its Maven Central jars (fetched once with Maven into the cache directory)
on the machine's Java 17+; Redis is ``redis-server`` from the OS packages. Everything a
run writes (data, logs, PID files) lives under ``settings.state_dir``.

Nothing here runs at import time; every function takes the settings it needs.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streams.exceptions import StackError
from streams.settings import Settings
from streams.stack.health import Health, check_redis, check_services
from streams.stack.processes import proc_status_mb
from streams.stack.secure import (
    StackCredentials,
    TlsFiles,
    client_settings,
    ensure_credentials,
    ensure_tls,
    kafka_listener_properties,
    load_credentials,
    redis_acl_lines,
    redis_tls_lines,
    scram_format_args,
    tls_files,
    write_client_env,
    write_private,
)

KAFKA_VERSION_RE = re.compile(r"<kafka\.version>([^<]+)</kafka\.version>")
_LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class ServiceStatus:
    """What ``stack status`` reports for one service."""

    name: str
    version: str
    port: int
    pid: int | None
    running: bool
    rss_mb: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "port": self.port,
            "pid": self.pid,
            "running": self.running,
            "rss_mb": self.rss_mb,
        }


def _stack_file(name: str) -> str:
    return resources.files("streams.stack").joinpath("files", name).read_text()


def kafka_version() -> str:
    """The Apache Kafka version the embedded stack runs (pinned in ``files/pom.xml``)."""
    match = KAFKA_VERSION_RE.search(_stack_file("pom.xml"))
    if match is None:  # pragma: no cover - the shipped pom always names it
        raise StackError("streams/stack/files/pom.xml does not pin <kafka.version>")
    return match.group(1)


# --- prerequisites ------------------------------------------------------------------------


def java_executable() -> str:
    """Path of a Java 17+ runtime, or :class:`StackError` saying how to get one."""
    candidates = []
    if java_home := os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(java_home) / "bin" / "java"))
    if found := shutil.which("java"):
        candidates.append(found)
    for java in candidates:
        try:
            out = subprocess.run(
                [java, "-version"], capture_output=True, text=True, timeout=30, check=False
            )
        except OSError:
            continue
        match = re.search(r'version "(\d+)', out.stderr + out.stdout)
        if match and int(match.group(1)) >= 17:
            return java
    raise StackError(
        "Java 17+ not found: install a JDK 17 or newer (Debian: apt-get install "
        "openjdk-17-jre-headless) or point JAVA_HOME at one"
    )


def ensure_redis_server() -> str:
    """Path of ``redis-server``; installs Debian's package when missing and running as root."""
    found = shutil.which("redis-server")
    if found:
        return found
    install = "apt-get update && apt-get install -y redis-server"
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], env=env)
        found = shutil.which("redis-server")
        if done.returncode == 0 and found:
            # Debian's package starts a system service on 6379: stop it, we run our own.
            subprocess.run(["service", "redis-server", "stop"], capture_output=True, check=False)
            return found
    raise StackError(f"redis-server not found: install it with `sudo {install}`")


def kafka_lib_dir(settings: Settings) -> Path:
    """Directory of the broker's jars; fetched with Maven on first use."""
    version = kafka_version()
    lib = settings.cache_dir / f"kafka-{version}" / "lib"
    marker = lib / ".complete"
    if marker.exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven not found: it fetches the Kafka jars once (Debian: apt-get install maven)"
        )
    build = settings.cache_dir / f"kafka-{version}"
    build.mkdir(parents=True, exist_ok=True)
    pom = build / "pom.xml"
    pom.write_text(_stack_file("pom.xml"))
    if lib.exists():
        shutil.rmtree(lib)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={lib}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(lib.glob("kafka_2.13-*.jar")):
        tail = (result.stdout + result.stderr)[-2000:]
        raise StackError(f"fetching Kafka {version} with Maven failed:\n{tail}")
    marker.write_text(version + "\n")
    return lib


# --- processes ------------------------------------------------------------------------------


def _port_open(port: int, host: str = _LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited child not yet reaped) counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class EmbeddedStack:
    """Start, stop and inspect the embedded Kafka + Redis described by ``settings``.

    ``secure``: Kafka with SASL and Redis with an ACL user (:mod:`streams.stack.secure`).
    Being secure is a property of the state directory: one started secure once (it holds
    ``credentials.json``) starts secure again, with the same credentials.
    """

    def __init__(self, settings: Settings, *, secure: bool = False, tls: bool = False) -> None:
        self.settings = settings
        self.root = settings.state_dir.resolve()
        self.kafka_dir = self.root / "kafka"
        self.redis_dir = self.root / "redis"
        self._secure = secure or tls
        self._tls = tls
        self.credentials: StackCredentials | None = None
        self.tls: TlsFiles | None = tls_files(self.root)

    @property
    def secure(self) -> bool:
        """Whether this stack runs (or will run) with authentication."""
        return self._secure or self.credentials is not None or self._stored() is not None

    def _stored(self) -> StackCredentials | None:
        if self.credentials is None:
            self.credentials = load_credentials(self.root)
        return self.credentials

    @property
    def env_file(self) -> Path:
        """``credentials.env`` of a secure stack: the client settings, to export."""
        return self.root / "credentials.env"

    # paths
    @property
    def kafka_pid_file(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def redis_pid_file(self) -> Path:
        return self.redis_dir / "redis.pid"

    # --- up --------------------------------------------------------------------------
    def up(self) -> list[ServiceStatus]:
        """Start whatever is not running, wait until both answer, return their status.

        Idempotent: services already running under this state directory are kept.
        """
        s = self.settings
        redis_pid = _read_pid(self.redis_pid_file)
        kafka_pid = _read_pid(self.kafka_pid_file)
        if self.secure:
            if self._stored() is None and (self.kafka_dir / "data" / "meta.properties").exists():
                raise StackError(
                    f"the stack under {self.root} was made without --secure: its Kafka has no "
                    "SASL users; set another DEMANDCAST_STATE_DIR (or remove this one) for "
                    "a secure stack"
                )
            self.credentials = ensure_credentials(s, self.root)
            if self._tls or self.tls is not None:
                self.tls = ensure_tls(self.root)
            write_client_env(s, self.credentials, self.root, self.tls)
        if not _pid_alive(redis_pid):
            self._check_port_free(s.stack_redis_port, "Redis")
            self._start_redis()
        if not _pid_alive(kafka_pid):
            self._check_port_free(s.stack_kafka_port, "Kafka")
            self._check_port_free(s.stack_controller_port, "the Kafka controller")
            self._start_kafka()
        self._wait_until_ready()
        return self.status()

    def _check_port_free(self, port: int, what: str) -> None:
        if _port_open(port):
            raise StackError(
                f"port {port} in use by another process: stop it or set another port for "
                f"{what} (DEMANDCAST_STACK_*_PORT)"
            )

    def _start_redis(self) -> None:
        binary = ensure_redis_server()
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        conf = self.redis_dir / "redis.conf"
        acl = redis_acl_lines(self.credentials) if self.credentials else []
        port = self.settings.stack_redis_port
        listen = redis_tls_lines(self.tls, port) if self.tls else [f"port {port}"]
        write_private(
            conf,
            "\n".join(
                [
                    *acl,
                    *listen,
                    f"bind {_LOCALHOST}",
                    f"dir {self.redis_dir}",
                    "daemonize no",
                    "protected-mode yes",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    f"logfile {self.redis_dir / 'redis.log'}",
                    "",
                ]
            ),
        )
        proc = subprocess.Popen(
            [binary, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.redis_dir / "redis.stderr").open("ab"),
            start_new_session=True,
        )
        self.redis_pid_file.write_text(f"{proc.pid}\n")

    def _kafka_properties(self) -> str:
        s = self.settings
        data = self.kafka_dir / "data"
        if self.credentials is not None:
            listeners = kafka_listener_properties(
                self.credentials,
                _LOCALHOST,
                s.stack_kafka_port,
                s.stack_controller_port,
                self.tls,
            )
        else:
            listeners = [
                f"listeners=PLAINTEXT://{_LOCALHOST}:{s.stack_kafka_port},"
                f"CONTROLLER://{_LOCALHOST}:{s.stack_controller_port}",
                f"advertised.listeners=PLAINTEXT://{_LOCALHOST}:{s.stack_kafka_port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
            ]
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{_LOCALHOST}:{s.stack_controller_port}",
                *listeners,
                f"log.dirs={data}",
                f"num.partitions={s.partitions}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "",
            ]
        )

    def _start_kafka(self) -> None:
        java = java_executable()
        lib = kafka_lib_dir(self.settings)
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        props = self.kafka_dir / "server.properties"
        write_private(props, self._kafka_properties())
        log_conf = self.kafka_dir / "log4j2.yaml"
        log_conf.write_text(_stack_file("log4j2.yaml"))
        classpath = f"{lib}/*"
        jvm = [
            java,
            f"-Xmx{self.settings.stack_kafka_heap_mb}m",
            f"-Xms{min(256, self.settings.stack_kafka_heap_mb)}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log_conf}",
            f"-Dkafka.logs.dir={self.kafka_dir}",
            "-cp",
            classpath,
        ]
        if not (self.kafka_dir / "data" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            scram = scram_format_args(self.credentials) if self.credentials else []
            fmt = subprocess.run(
                [
                    *jvm,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                    *scram,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                out = fmt.stdout + fmt.stderr
                for secret in self.credentials.secrets() if self.credentials else []:
                    out = out.replace(secret, "***")
                raise StackError(f"formatting Kafka storage failed:\n{out}")
        proc = subprocess.Popen(
            [*jvm, "kafka.Kafka", str(props)],
            stdin=subprocess.DEVNULL,
            stdout=(self.kafka_dir / "kafka.stdout").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.kafka_pid_file.write_text(f"{proc.pid}\n")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.settings.stack_start_timeout_s
        redis_ok = kafka_ok = False
        while time.monotonic() < deadline:
            health = self._answers()
            redis_ok = redis_ok or health.redis is None
            kafka_ok = kafka_ok or health.kafka is None
            if redis_ok and kafka_ok:
                return
            for name, pid_file, log in (
                ("Kafka", self.kafka_pid_file, self.kafka_dir / "kafka.stdout"),
                ("Redis", self.redis_pid_file, self.redis_dir / "redis.log"),
            ):
                if not _pid_alive(_read_pid(pid_file)):
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise StackError(f"{name} exited during start-up; its log ends:\n{tail}")
            time.sleep(0.25)
        missing = [n for n, ok in (("Kafka", kafka_ok), ("Redis", redis_ok)) if not ok]
        raise StackError(
            f"{' and '.join(missing)} did not answer within "
            f"{self.settings.stack_start_timeout_s:.0f}s; logs are under {self.root}"
        )

    def _answers(self) -> Health:
        """Ask this stack's own ports (not the configured addresses) whether they answer."""
        port = self.settings.stack_kafka_port
        local = self.settings.model_copy(
            update={
                "kafka_bootstrap_servers": f"{_LOCALHOST}:{port}",
                "kafka_security_protocol": "PLAINTEXT",
                "kafka_sasl_mechanism": None,
                "redis_url": f"redis://{_LOCALHOST}:{self.settings.stack_redis_port}/0",
                "redis_username": None,
                "redis_password": None,
            }
        )
        creds = self._stored()
        if creds is not None:
            local = client_settings(local, creds, self.tls)
        if not _port_open(port):  # skip librdkafka's timeout while the broker is down
            return Health(kafka=f"nothing listens on port {port}", redis=check_redis(local))
        return check_services(local, timeout_s=2.0)

    # --- down ------------------------------------------------------------------------
    def down(self, timeout: float = 30.0) -> list[str]:
        """Stop both services (TERM, then KILL after ``timeout``); return what was stopped."""
        stopped = []
        for name, pid_file in (("kafka", self.kafka_pid_file), ("redis", self.redis_pid_file)):
            pid = _read_pid(pid_file)
            if _pid_alive(pid):
                assert pid is not None
                self._terminate(pid, timeout)
                stopped.append(f"{name} (pid {pid})")
            pid_file.unlink(missing_ok=True)
        return stopped

    @staticmethod
    def _terminate(pid: int, timeout: float) -> None:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            with contextlib.suppress(ChildProcessError):  # reap it if it is our child
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return

    # --- status ----------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        s = self.settings
        kafka_pid = _read_pid(self.kafka_pid_file)
        redis_pid = _read_pid(self.redis_pid_file)
        health = self._answers()
        return [
            ServiceStatus(
                name="kafka",
                version=kafka_version(),
                port=s.stack_kafka_port,
                pid=kafka_pid if _pid_alive(kafka_pid) else None,
                running=_pid_alive(kafka_pid) and health.kafka is None,
                rss_mb=proc_status_mb(kafka_pid, "VmRSS") if _pid_alive(kafka_pid) else None,
            ),
            ServiceStatus(
                name="redis",
                version=redis_version(),
                port=s.stack_redis_port,
                pid=redis_pid if _pid_alive(redis_pid) else None,
                running=_pid_alive(redis_pid) and health.redis is None,
                rss_mb=proc_status_mb(redis_pid, "VmRSS") if _pid_alive(redis_pid) else None,
            ),
        ]


def redis_version() -> str:
    """Version of the ``redis-server`` on PATH, or ``"not installed"``."""
    binary = shutil.which("redis-server")
    if binary is None:
        return "not installed"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"v=(\S+)", out.stdout)
    return match.group(1) if match else out.stdout.strip()
