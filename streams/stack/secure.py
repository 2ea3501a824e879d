"""The secure embedded stack (``demandcast stack up --secure``): its credentials and the
Kafka and Redis configuration that enforces them.

- **Kafka**: the client listener is ``SASL_PLAINTEXT`` with one mechanism (SCRAM-SHA-512
  by default, SCRAM-SHA-256 or PLAIN when ``DEMANDCAST_KAFKA_SASL_MECHANISM`` says so); the
  KRaft controller listener is SASL/PLAIN with an internal user of its own (KRaft
  controllers cannot use SCRAM). SCRAM users are written into the metadata log when the
  storage is formatted. No TLS: the stack listens on loopback only.
- **Redis**: the ``default`` user is off (a connection without credentials gets
  ``NOAUTH``); one named ACL user with all rights, its password stored in ``redis.conf``
  only as a SHA-256 hash.

The credentials come from the settings (``DEMANDCAST_KAFKA_SASL_USERNAME`` /
``_PASSWORD``, ``DEMANDCAST_REDIS_USERNAME`` / ``_PASSWORD``) or, when not given, are
generated on the first secure start; either way they are stored under the state directory
in ``credentials.json`` (the stack's own record) and ``credentials.env`` (what clients
export), both mode 0600, and every later start of that state directory uses them.
No function here logs, prints or raises with a secret in its text.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from streams.exceptions import StackError
from streams.settings import Settings

CREDENTIALS_JSON = "credentials.json"
CREDENTIALS_ENV = "credentials.env"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_PASSWORD = re.compile(r"^[A-Za-z0-9_.~+-]{8,256}$")
"""Passwords go into Kafka's JAAS and SCRAM options unquoted-safe: no quotes, commas,
brackets, equals signs or spaces (the generated ones are URL-safe base64)."""


@dataclass(frozen=True)
class StackCredentials:
    """Who may use the secure stack. ``controller_password`` and ``broker_password`` are the
    broker's own (controller listener, inter-broker); clients never need them."""

    mechanism: str
    kafka_username: str
    kafka_password: SecretStr
    redis_username: str
    redis_password: SecretStr
    broker_password: SecretStr
    controller_password: SecretStr

    def __repr__(self) -> str:  # the dataclass repr would be safe too; say so explicitly
        return (
            f"StackCredentials(mechanism={self.mechanism!r}, kafka_username="
            f"{self.kafka_username!r}, redis_username={self.redis_username!r}, passwords=***)"
        )

    def as_record(self) -> dict[str, str]:
        return {
            "mechanism": self.mechanism,
            "kafka_username": self.kafka_username,
            "kafka_password": self.kafka_password.get_secret_value(),
            "redis_username": self.redis_username,
            "redis_password": self.redis_password.get_secret_value(),
            "broker_password": self.broker_password.get_secret_value(),
            "controller_password": self.controller_password.get_secret_value(),
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> StackCredentials:
        return cls(
            mechanism=str(data["mechanism"]),
            kafka_username=str(data["kafka_username"]),
            kafka_password=SecretStr(str(data["kafka_password"])),
            redis_username=str(data["redis_username"]),
            redis_password=SecretStr(str(data["redis_password"])),
            broker_password=SecretStr(str(data["broker_password"])),
            controller_password=SecretStr(str(data["controller_password"])),
        )

    def secrets(self) -> list[str]:
        return [
            s.get_secret_value()
            for s in (
                self.kafka_password,
                self.redis_password,
                self.broker_password,
                self.controller_password,
            )
        ]


BROKER_USER = "demandcast-broker"
CONTROLLER_USER = "demandcast-controller"


def _generated() -> SecretStr:
    return SecretStr(secrets.token_urlsafe(24))


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start (never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    os.chmod(path, 0o600)


def write_private(path: Path, text: str) -> None:
    """:func:`_write_private` for the stack's configuration files that hold secrets."""
    _write_private(path, text)


def _validate(settings: Settings) -> None:
    for what, value in (
        ("DEMANDCAST_KAFKA_SASL_USERNAME", settings.kafka_sasl_username),
        ("DEMANDCAST_REDIS_USERNAME", settings.redis_username),
    ):
        if value is not None and not _NAME.match(value):
            raise StackError(f"{what} must be 1-64 of A-Z a-z 0-9 _ . - for the secure stack")
    for what, secret in (
        ("DEMANDCAST_KAFKA_SASL_PASSWORD", settings.kafka_sasl_password),
        ("DEMANDCAST_REDIS_PASSWORD", settings.redis_password),
    ):
        if secret is not None and not _PASSWORD.match(secret.get_secret_value()):
            raise StackError(
                f"{what} must be 8-256 of A-Z a-z 0-9 _ . ~ + - for the secure stack "
                "(its value is not shown)"
            )


def credentials_file(root: Path) -> Path:
    return root / CREDENTIALS_JSON


def load_credentials(root: Path) -> StackCredentials | None:
    """The credentials a secure stack under ``root`` was made with, or None (not secure)."""
    path = credentials_file(root)
    if not path.exists():
        return None
    try:
        return StackCredentials.from_record(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        raise StackError(
            f"{path} is unreadable or incomplete: remove the state directory {root} (or set "
            "another DEMANDCAST_STATE_DIR) and start the secure stack again"
        ) from None


def ensure_credentials(settings: Settings, root: Path) -> StackCredentials:
    """The stack's credentials: those stored under ``root``, else the settings' (anything
    not given is generated), stored now. Settings that name other credentials than those
    stored are refused (a SCRAM user cannot be changed by restarting the broker)."""
    _validate(settings)
    stored = load_credentials(root)
    if stored is not None:
        _check_consistent(settings, stored, root)
        return stored
    mechanism = settings.kafka_sasl_mechanism or "SCRAM-SHA-512"
    creds = StackCredentials(
        mechanism=mechanism,
        kafka_username=settings.kafka_sasl_username or "demandcast",
        kafka_password=settings.kafka_sasl_password or _generated(),
        redis_username=settings.redis_username or "demandcast",
        redis_password=settings.redis_password or _generated(),
        broker_password=_generated(),
        controller_password=_generated(),
    )
    _write_private(credentials_file(root), json.dumps(creds.as_record(), indent=2) + "\n")
    return creds


def _check_consistent(settings: Settings, stored: StackCredentials, root: Path) -> None:
    given = {
        "DEMANDCAST_KAFKA_SASL_MECHANISM": (settings.kafka_sasl_mechanism, stored.mechanism),
        "DEMANDCAST_KAFKA_SASL_USERNAME": (settings.kafka_sasl_username, stored.kafka_username),
        "DEMANDCAST_KAFKA_SASL_PASSWORD": (
            settings.kafka_sasl_password.get_secret_value()
            if settings.kafka_sasl_password
            else None,
            stored.kafka_password.get_secret_value(),
        ),
        "DEMANDCAST_REDIS_USERNAME": (settings.redis_username, stored.redis_username),
        "DEMANDCAST_REDIS_PASSWORD": (
            settings.redis_password.get_secret_value() if settings.redis_password else None,
            stored.redis_password.get_secret_value(),
        ),
    }
    differ = [name for name, (mine, theirs) in given.items() if mine and mine != theirs]
    if differ:
        raise StackError(
            f"{', '.join(differ)} {'differs' if len(differ) == 1 else 'differ'} from the "
            f"credentials the secure stack under {root} "
            f"was made with ({credentials_file(root)}): export those "
            f"(`set -a; . {root / CREDENTIALS_ENV}; set +a`), unset yours, or use another "
            "DEMANDCAST_STATE_DIR"
        )


def client_settings(
    settings: Settings, creds: StackCredentials, tls: TlsFiles | None = None
) -> Settings:
    """``settings`` with the secure stack's client credentials (for its own health checks;
    with ``tls``, its CA and a ``rediss://`` URL)."""
    update: dict[str, Any] = {
        "kafka_security_protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": creds.mechanism,
        "kafka_sasl_username": creds.kafka_username,
        "kafka_sasl_password": creds.kafka_password,
        "redis_username": creds.redis_username,
        "redis_password": creds.redis_password,
    }
    if tls is not None:
        update["kafka_ssl_cafile"] = tls.ca
        update["redis_ssl_cafile"] = tls.ca
        update["redis_url"] = settings.redis_url.replace("redis://", "rediss://", 1)
    return settings.model_copy(update=update)


def client_env(
    settings: Settings, creds: StackCredentials, tls: TlsFiles | None = None
) -> dict[str, str]:
    """The ``DEMANDCAST_*`` variables a client of the secure stack needs."""
    s = settings
    env = {
        "DEMANDCAST_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{s.stack_kafka_port}",
        "DEMANDCAST_KAFKA_SECURITY_PROTOCOL": "SASL_SSL" if tls else "SASL_PLAINTEXT",
        "DEMANDCAST_KAFKA_SASL_MECHANISM": creds.mechanism,
        "DEMANDCAST_KAFKA_SASL_USERNAME": creds.kafka_username,
        "DEMANDCAST_KAFKA_SASL_PASSWORD": creds.kafka_password.get_secret_value(),
        "DEMANDCAST_REDIS_URL": f"{'rediss' if tls else 'redis'}://127.0.0.1:"
        f"{s.stack_redis_port}/0",
        "DEMANDCAST_REDIS_USERNAME": creds.redis_username,
        "DEMANDCAST_REDIS_PASSWORD": creds.redis_password.get_secret_value(),
    }
    if tls is not None:
        env["DEMANDCAST_KAFKA_SSL_CAFILE"] = str(tls.ca)
        env["DEMANDCAST_REDIS_SSL_CAFILE"] = str(tls.ca)
    return env


def write_client_env(
    settings: Settings, creds: StackCredentials, root: Path, tls: TlsFiles | None = None
) -> Path:
    """Write ``credentials.env`` (0600): ``set -a; . credentials.env; set +a`` exports it."""
    lines = [
        "# demandcast secure stack: the client settings (secret; mode 0600)",
        f"# export with:  set -a; . {root / CREDENTIALS_ENV}; set +a",
        *(f"{k}={shlex.quote(v)}" for k, v in client_env(settings, creds, tls).items()),
    ]
    path = root / CREDENTIALS_ENV
    _write_private(path, "\n".join(lines) + "\n")
    return path


# --- the services' configuration --------------------------------------------------------


def _jaas(module: str, username: str, password: str, users: dict[str, str]) -> str:
    extra = "".join(f' user_{u}="{p}"' for u, p in users.items())
    return f'{module} required username="{username}" password="{password}"{extra};'


_PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"


def kafka_listener_properties(
    creds: StackCredentials,
    host: str,
    port: int,
    controller_port: int,
    tls: TlsFiles | None = None,
) -> list[str]:
    """``server.properties`` lines of the secure listeners (they hold secrets: the file
    is written 0600); with ``tls``, the client listener is ``SASL_SSL``."""
    mech = creds.mechanism
    proto = "SASL_SSL" if tls else "SASL_PLAINTEXT"
    name = proto.lower()
    broker_pw = creds.broker_password.get_secret_value()
    ctl_pw = creds.controller_password.get_secret_value()
    if mech == "PLAIN":
        broker_jaas = _jaas(
            _PLAIN,
            BROKER_USER,
            broker_pw,
            {BROKER_USER: broker_pw, creds.kafka_username: creds.kafka_password.get_secret_value()},
        )
    else:
        broker_jaas = _jaas(_SCRAM, BROKER_USER, broker_pw, {})
    return [
        f"listeners={proto}://{host}:{port},CONTROLLER://{host}:{controller_port}",
        f"advertised.listeners={proto}://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        f"listener.security.protocol.map={proto}:{proto},CONTROLLER:SASL_PLAINTEXT",
        f"inter.broker.listener.name={proto}",
        f"sasl.mechanism.inter.broker.protocol={mech}",
        "sasl.mechanism.controller.protocol=PLAIN",
        f"listener.name.{name}.sasl.enabled.mechanisms={mech}",
        f"listener.name.{name}.{mech.lower()}.sasl.jaas.config={broker_jaas}",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        "listener.name.controller.plain.sasl.jaas.config="
        + _jaas(_PLAIN, CONTROLLER_USER, ctl_pw, {CONTROLLER_USER: ctl_pw}),
        *(kafka_tls_properties(tls) if tls else []),
    ]


def scram_format_args(creds: StackCredentials) -> list[str]:
    """``StorageTool format`` arguments that create the SCRAM users (none for PLAIN)."""
    if not creds.mechanism.startswith("SCRAM"):
        return []
    users = [
        (BROKER_USER, creds.broker_password.get_secret_value()),
        (creds.kafka_username, creds.kafka_password.get_secret_value()),
    ]
    args: list[str] = []
    for name, password in users:
        args += ["--add-scram", f"{creds.mechanism}=[name={name},password={password}]"]
    return args


def redis_acl_lines(creds: StackCredentials) -> list[str]:
    """``redis.conf`` lines: the default user off, one named user (password as a hash)."""
    digest = hashlib.sha256(creds.redis_password.get_secret_value().encode()).hexdigest()
    return [
        "user default off resetchannels -@all",
        f"user {creds.redis_username} on #{digest} ~* &* +@all",
    ]


# --- TLS (``--secure --tls``) -----------------------------------------------------------

TLS_DIR = "tls"


@dataclass(frozen=True)
class TlsFiles:
    """A private CA and the services' certificate (``IP:127.0.0.1``, ``DNS:localhost``)."""

    ca: Path
    cert: Path
    key: Path
    keystore: Path  # key and certificate in one PEM file (Kafka's PEM key store)


def tls_files(root: Path) -> TlsFiles | None:
    """The TLS files of the stack under ``root``, or None when it runs without TLS."""
    d = root / TLS_DIR
    files = TlsFiles(d / "ca.pem", d / "server.pem", d / "server.key", d / "keystore.pem")
    return files if files.keystore.exists() else None


def ensure_tls(root: Path) -> TlsFiles:
    """A CA and a server certificate for loopback, made once with ``openssl`` (keys 0600)."""
    found = tls_files(root)
    if found is not None:
        return found
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StackError("--tls needs the openssl command (Debian: apt-get install openssl)")
    d = root / TLS_DIR
    d.mkdir(parents=True, exist_ok=True)
    ca_key, csr, ext = d / "ca.key", d / "server.csr", d / "server.ext"
    files = TlsFiles(d / "ca.pem", d / "server.pem", d / "server.key", d / "keystore.pem")
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
         str(files.ca), "-days", "3650", "-subj", "/CN=demandcast embedded stack CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(files.key), "-out", str(csr),
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", str(csr), "-CA", str(files.ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(files.cert), "-days", "3650", "-extfile", str(ext)],
    ]  # fmt: skip
    for args in steps:
        done = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"openssl {args[0]} failed: {done.stderr[-1000:]}")
    for key in (ca_key, files.key):
        os.chmod(key, 0o600)
    _write_private(files.keystore, files.key.read_text() + files.cert.read_text())
    return files


def kafka_tls_properties(tls: TlsFiles) -> list[str]:
    """``server.properties`` lines of the broker's TLS (PEM files; no client certificates)."""
    return [
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={tls.keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={tls.ca}",
        "ssl.client.auth=none",
    ]


def redis_tls_lines(tls: TlsFiles, port: int) -> list[str]:
    """``redis.conf`` lines: TLS only on ``port`` (no plaintext port)."""
    return [
        "port 0",
        f"tls-port {port}",
        f"tls-cert-file {tls.cert}",
        f"tls-key-file {tls.key}",
        f"tls-ca-cert-file {tls.ca}",
        "tls-auth-clients no",
    ]
