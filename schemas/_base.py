"""Shared building blocks of every contract: the base model, bounded field types, errors.

Nothing here does I/O. Every contract is a frozen pydantic v2 model that refuses unknown
fields, NaN and infinity; ``decode`` turns raw bytes into a contract or raises
:class:`SchemaError`, never anything else.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

SCHEMA_VERSION = 1
"""The version every contract of this release writes; readers accept it and older ones."""

MAX_MESSAGE_BYTES = 1_048_576
"""Largest encoded message any contract accepts (Kafka's default ``max.message.bytes``)."""

MAX_SKU_LENGTH = 64
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 512
MAX_QUANTITY = 1_000_000
MAX_PRICE = 1_000_000.0

# Epoch numbers are told apart by magnitude: seconds, milliseconds or microseconds.
# Any instant from 1970 to 2100 falls in exactly one band.
_EPOCH_S_MAX = 4_102_444_800  # 2100-01-01 in seconds
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_DIGITS = re.compile(r"^-?\d+(\.\d+)?$")


class DemandcastError(Exception):
    """Root of every error this project raises on purpose."""


class SchemaError(DemandcastError, ValueError):
    """A message does not satisfy its contract.

    ``errors`` lists ``(field, reason)`` pairs; ``str()`` names every field and reason.
    Subclasses ``ValueError`` so ``except ValueError`` callers keep working.
    """

    def __init__(self, model: str, errors: list[tuple[str, str]]) -> None:
        self.model = model
        self.errors = errors
        detail = "; ".join(f"{field}: {reason}" for field, reason in errors)
        super().__init__(f"invalid {model}: {detail}")

    @classmethod
    def from_validation_error(cls, model: str, exc: ValidationError) -> SchemaError:
        errors = []
        for err in exc.errors(include_url=False, include_input=False):
            field = ".".join(str(part) for part in err["loc"]) or "<message>"
            errors.append((field, err["msg"]))
        return cls(model, errors)


def parse_event_time(value: Any) -> datetime:
    """Coerce an event time to a timezone-aware UTC datetime.

    Accepts a datetime (naive means UTC), an ISO-8601 string, or epoch seconds,
    milliseconds or microseconds as a number or a string of digits; the unit is told by
    magnitude. Anything outside 1970-01-01 .. 2100-01-01 is refused.

    >>> parse_event_time(1291192560).isoformat()
    '2010-12-01T08:36:00+00:00'
    >>> parse_event_time(1291192560000) == parse_event_time("2010-12-01T08:36:00Z")
    True
    """
    if isinstance(value, str) and _DIGITS.match(value.strip()):
        value = float(value) if "." in value else int(value)
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("epoch time must be a finite, non-negative number")
        magnitude = abs(value)
        if magnitude < _EPOCH_S_MAX:
            seconds = float(value)
        elif magnitude < _EPOCH_S_MAX * 1_000:
            seconds = value / 1_000
        elif magnitude < _EPOCH_S_MAX * 1_000_000:
            seconds = value / 1_000_000
        else:
            raise ValueError("epoch time is beyond 2100 in seconds, milliseconds and microseconds")
        result = datetime.fromtimestamp(seconds, tz=UTC)
    elif isinstance(value, datetime):
        result = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 64:
            raise ValueError("time string is too long")
        try:
            result = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                "not an ISO-8601 time or epoch seconds/milliseconds/microseconds"
            ) from None
        if result.tzinfo is None:
            result = result.replace(tzinfo=UTC)
    else:
        raise ValueError("expected an ISO-8601 string or an epoch number")
    result = result.astimezone(UTC)
    if not _EARLIEST <= result < _LATEST:
        raise ValueError("time must lie between 1970-01-01 and 2100-01-01")
    return result


def _iso_z(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UtcDatetime = Annotated[
    datetime,
    BeforeValidator(parse_event_time),
    PlainSerializer(_iso_z, return_type=str, when_used="json"),
    Field(description="UTC instant; accepts ISO-8601 or epoch s / ms / µs"),
]


def _no_control_chars(value: str) -> str:
    if any(ord(ch) < 32 for ch in value):
        raise ValueError("must not contain control characters")
    return value


Sku = Annotated[
    str,
    Field(min_length=1, max_length=MAX_SKU_LENGTH, description="Stock-keeping unit code"),
    AfterValidator(_no_control_chars),
]
Identifier = Annotated[
    str, Field(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(_no_control_chars)
]
Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]
Price = Annotated[float, Field(ge=0.0, le=MAX_PRICE)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]


class Contract(BaseModel):
    """Base of every message: frozen, no unknown fields, no NaN or infinity."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        str_strip_whitespace=False,
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )

    def to_json(self) -> bytes:
        """Encode as compact UTF-8 JSON (what goes on a Kafka topic)."""
        return self.model_dump_json(exclude_none=False).encode()


C = TypeVar("C", bound=Contract)


def decode(model: type[C], raw: bytes | bytearray | memoryview | str) -> C:
    """Decode one JSON message into ``model``, or raise :class:`SchemaError`.

    The size bound is checked before parsing, so a 10 MB payload costs nothing.
    """
    name = model.__name__
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    size = len(raw)
    if size > MAX_MESSAGE_BYTES:
        raise SchemaError(name, [("<message>", f"{size} bytes exceeds {MAX_MESSAGE_BYTES}")])
    try:
        return model.model_validate_json(bytes(raw))
    except ValidationError as exc:
        raise SchemaError.from_validation_error(name, exc) from None
    except (ValueError, TypeError, RecursionError) as exc:  # pragma: no cover - defensive
        raise SchemaError(name, [("<message>", str(exc)[:200])]) from None


def validate(model: type[C], data: Any) -> C:
    """Validate a Python object (a dict from a CSV row, say) into ``model``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SchemaError.from_validation_error(model.__name__, exc) from None
