"""Logging of the long-running processes: one line per event that matters.

``configure_logging(settings, process, level)`` installs one handler on the root logger:
text (``time level process logger: message``) or, with ``DEMANDCAST_LOG_FORMAT=json``, one
JSON object a line with ``ts``, ``level``, ``process``, ``logger``, ``message`` and the
event's context when the call passes it (``extra=context(topic_partition=..., window=...)``).
Every line goes through :class:`Redactor`: the settings' secrets (SASL and Redis passwords,
a password inside a URL) never reach a log line, whatever the message says.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import urlsplit

from streams.settings import Settings

CONTEXT_FIELDS = ("topic_partition", "window", "sku_count", "version", "reason")
"""Attributes of a record written as JSON fields when present (``extra=``)."""

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]+)@")
_KEY_VALUE = re.compile(r"(?i)(password|passwd|secret|token)(['\"]?\s*[=:]\s*['\"]?)([^\s'\",}]+)")


def context(**fields: Any) -> dict[str, Any]:
    """``extra=`` for a log call: the event's topic-partition, window, ... (None dropped)."""
    return {k: v for k, v in fields.items() if v is not None}


class Redactor:
    """Replaces the known secrets, URL passwords and ``password=...`` pairs with ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    @classmethod
    def of(cls, settings: Settings) -> Redactor:
        found: list[str] = []
        for name in type(settings).model_fields:
            value = getattr(settings, name)
            if hasattr(value, "get_secret_value"):
                found.append(value.get_secret_value())
        for url in (settings.redis_url,):
            password = urlsplit(url).password
            if password:
                found.append(password)
        return cls(found)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        text = _URL_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)
        return _KEY_VALUE.sub(r"\1\2***", text)


class TextFormatter(logging.Formatter):
    def __init__(self, process: str, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s " + process + " %(name)s: %(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if hasattr(record, k)]
        if extras:
            line += " [" + " ".join(extras) + "]"
        return self.redact(line)


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str, redact: Redactor) -> None:
        super().__init__()
        self.process = process
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.process,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        for key in CONTEXT_FIELDS:
            if hasattr(record, key):
                entry[key] = self.redact(str(getattr(record, key)))
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def handler_for(settings: Settings, process: str, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler in the configured format, secrets redacted."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    redact = Redactor.of(settings)
    formatter: logging.Formatter = (
        JsonFormatter(process, redact)
        if settings.log_format == "json"
        else TextFormatter(process, redact)
    )
    handler.setFormatter(formatter)
    return handler


def configure_logging(
    settings: Settings, process: str, level: str | int = "info", stream: IO[str] | None = None
) -> logging.Handler:
    """Make the root logger write through :func:`handler_for` only, at ``level``."""
    handler = handler_for(settings, process, stream)
    root = logging.getLogger()
    root.handlers.clear()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
