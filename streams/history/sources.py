"""Importers of historical event logs: each source row becomes a schema event or a rejection.

Formats:

- ``uci``: the UCI Online Retail invoice log (``InvoiceNo,StockCode,Description,Quantity,
  InvoiceDate,UnitPrice,CustomerID,Country``; local UK time; cancellations are ``C``
  invoices with negative quantity). Cleaning rules (non-product stock codes, ...) come from
  :mod:`models.data`, the same rules the forecaster's training data uses.
- ``jsonl``: one JSON event per line in the ``schemas`` contracts (any ``type``).
- ``rees46``: the REES46 e-commerce behaviour CSV (``event_time,event_type,product_id,
  category_id,category_code,brand,price,user_id,user_session``).
- ``retailrocket``: Retailrocket ``events.csv`` (``timestamp,visitorid,event,itemid,
  transactionid``; epoch milliseconds).
- ``completejourney``: dunnhumby's The Complete Journey (orders and promotions; the path is
  the word ``package`` or a directory of exported files):
  :mod:`streams.history.completejourney`.

Every event gets a deterministic ``event_id`` derived from the content of its source row
(plus the occurrence number when the same row appears more than once in a file), so
replaying the same log twice, or an overlapping slice of it, produces the same ids.
Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from schemas import (
    ClickEvent,
    Event,
    InventoryEvent,
    OrderEvent,
    PromotionEvent,
    SchemaError,
    decode_any_event,
    validate,
)
from streams.exceptions import ReplayError
from streams.settings import Settings

Format = Literal["uci", "jsonl", "rees46", "retailrocket", "completejourney"]
FORMATS: tuple[str, ...] = ("uci", "jsonl", "rees46", "retailrocket", "completejourney")

REES46_COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)
RETAILROCKET_COLUMNS = ("timestamp", "visitorid", "event", "itemid", "transactionid")
RETAILROCKET_ACTIONS = {"view": "view", "addtocart": "cart", "transaction": "purchase"}
UK = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class Rejected:
    """A source row that maps to no event, and why (``reason`` is a short category)."""

    row: int
    reason: str
    detail: str = ""


def topic_of(event: Event, settings: Settings) -> str:
    """The input topic of an event, by its type."""
    if isinstance(event, OrderEvent):
        return settings.topic_orders
    if isinstance(event, ClickEvent):
        return settings.topic_clicks
    if isinstance(event, PromotionEvent):
        return settings.topic_promotions
    if isinstance(event, InventoryEvent):
        return settings.topic_inventory
    raise ReplayError(f"no topic for event type {type(event).__name__}")  # pragma: no cover


def key_of(event: Event) -> bytes:
    """The Kafka key: the SKU (a promotion: its first SKU, else its category)."""
    if isinstance(event, PromotionEvent):
        return (event.skus[0] if event.skus else event.category or event.promotion_id).encode()
    return str(getattr(event, "sku")).encode()  # noqa: B009 - every other event has a sku


def open_text(path: Path) -> io.TextIOBase:
    """Open a log as text, transparently gunzipping ``.gz`` files."""
    if not path.exists():
        raise ReplayError(f"no such file: {path}")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return io.TextIOWrapper(path.open("rb"), encoding="utf-8", newline="")


class _Ids:
    """Deterministic ids: a hash of the row's content, plus its occurrence if repeated."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.seen: dict[bytes, int] = {}

    def __call__(self, *parts: str) -> str:
        digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=10).digest()
        count = self.seen.get(digest, 0)
        self.seen[digest] = count + 1
        base = f"{self.prefix}-{digest.hex()}"
        return base if count == 0 else f"{base}-{count}"


def _schema_reason(exc: SchemaError) -> tuple[str, str]:
    field, msg = exc.errors[0] if exc.errors else ("<message>", str(exc))
    return f"invalid {field}", msg


def _uci_rules() -> Any:
    """The UCI cleaning rules of :mod:`models.data` (shared with the forecaster's data)."""
    try:
        from models import data
    except ImportError as exc:  # pragma: no cover - models/ ships with the package
        raise ReplayError(
            f"the UCI cleaning rules in models.data cannot be imported: {exc}"
        ) from None
    return data


def iter_uci(path: Path) -> Iterator[OrderEvent | Rejected]:
    """Map the UCI Online Retail log to order events (cancellations: negative quantity)."""
    rules = _uci_rules()
    ids = _Ids("uci")
    with open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[:8]) != rules.UCI_COLUMNS:
            raise ReplayError(
                f"{path} is not a UCI Online Retail CSV: header {header!r}, "
                f"expected {','.join(rules.UCI_COLUMNS)}"
            )
        for row_no, row in enumerate(reader, start=2):
            if len(row) != 8:
                yield Rejected(row_no, "wrong column count", f"{len(row)} columns")
                continue
            invoice, code, _desc, qty_s, date_s, price_s, customer, country = (
                x.strip() for x in row
            )
            if not rules.is_product_code(code):
                yield Rejected(row_no, "non-product stock code", code)
                continue
            code = code.upper()
            try:
                quantity = int(qty_s)
                price = float(price_s)
                local = datetime.strptime(date_s, "%Y-%m-%d %H:%M:%S")
            except ValueError as exc:
                yield Rejected(row_no, "unparsable number or date", str(exc))
                continue
            if quantity == 0:
                yield Rejected(row_no, "zero quantity")
                continue
            if price < 0:
                yield Rejected(row_no, "negative unit price (bad-debt adjustment)", price_s)
                continue
            if price == 0:
                yield Rejected(row_no, "zero unit price (stock adjustment, not a sale)")
                continue
            if quantity < 0 and not invoice.upper().startswith("C"):
                yield Rejected(row_no, "negative quantity outside a cancellation invoice")
                continue
            if quantity > 0 and rules.is_cancellation(invoice, quantity):
                yield Rejected(row_no, "positive quantity on a cancellation invoice")
                continue
            when = local.replace(tzinfo=UK).astimezone(UTC)
            try:
                event = validate(
                    OrderEvent,
                    {
                        "event_id": ids(invoice, code, qty_s, date_s, price_s, customer),
                        "event_time": when,
                        "order_id": invoice,
                        "sku": code,
                        "quantity": quantity,
                        "unit_price": price,
                        "customer_id": rules.parse_customer_id(customer),
                        "country": country or None,
                        "channel": "online",
                    },
                )
            except SchemaError as exc:
                yield Rejected(row_no, *_schema_reason(exc))
                continue
            yield event


def iter_jsonl(path: Path) -> Iterator[Event | Rejected]:
    """One JSON event per line, in the ``schemas`` contracts."""
    with open_text(path) as fh:
        for row_no, line in enumerate(fh, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                yield decode_any_event(text.encode())
            except SchemaError as exc:
                yield Rejected(row_no, *_schema_reason(exc))


def _csv_rows(
    path: Path, columns: tuple[str, ...], name: str
) -> Iterator[tuple[int, dict[str, str]]]:
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not set(columns) <= set(reader.fieldnames):
            raise ReplayError(
                f"{path} is not a {name} CSV: header {reader.fieldnames!r}, "
                f"expected {','.join(columns)}"
            )
        yield from enumerate(reader, start=2)


def iter_rees46(path: Path) -> Iterator[ClickEvent | Rejected]:
    """REES46 behaviour events: view / cart / remove_from_cart / purchase."""
    ids = _Ids("rees46")
    for row_no, row in _csv_rows(path, REES46_COLUMNS, "REES46"):
        values = [row.get(c) or "" for c in REES46_COLUMNS]
        when = values[0].strip().removesuffix(" UTC")
        session = values[8].strip() or values[7].strip()
        if not session:
            yield Rejected(row_no, "no user_session and no user_id")
            continue
        try:
            yield validate(
                ClickEvent,
                {
                    "event_id": ids(*values),
                    "event_time": when,
                    "action": values[1].strip(),
                    "session_id": session,
                    "user_id": values[7].strip() or None,
                    "sku": values[2].strip(),
                    "price": float(values[6]) if values[6].strip() else None,
                    "category_id": values[3].strip() or None,
                    "category_code": values[4].strip() or None,
                    "brand": values[5].strip() or None,
                },
            )
        except SchemaError as exc:
            yield Rejected(row_no, *_schema_reason(exc))
        except ValueError as exc:
            yield Rejected(row_no, "unparsable number", str(exc))


def iter_retailrocket(path: Path) -> Iterator[ClickEvent | Rejected]:
    """Retailrocket ``events.csv``: view / addtocart / transaction (epoch ms)."""
    ids = _Ids("rr")
    for row_no, row in _csv_rows(path, RETAILROCKET_COLUMNS, "Retailrocket"):
        values = [(row.get(c) or "").strip() for c in RETAILROCKET_COLUMNS]
        action = RETAILROCKET_ACTIONS.get(values[2])
        if action is None:
            yield Rejected(row_no, "unknown event", values[2])
            continue
        try:
            yield validate(
                ClickEvent,
                {
                    "event_id": ids(*values),
                    "event_time": values[0],
                    "action": action,
                    "session_id": values[1],
                    "user_id": values[1] or None,
                    "sku": values[3],
                    "transaction_id": values[4] or None,
                },
            )
        except SchemaError as exc:
            yield Rejected(row_no, *_schema_reason(exc))


def _iter_completejourney(path: Path) -> Iterator[Event | Rejected]:
    from streams.history.completejourney import iter_completejourney

    return iter_completejourney(path)


def iter_source(path: Path, fmt: str) -> Iterator[Event | Rejected]:
    """The events (and rejections) of a log in one of :data:`FORMATS`, in file order."""
    readers = {
        "uci": iter_uci,
        "jsonl": iter_jsonl,
        "rees46": iter_rees46,
        "retailrocket": iter_retailrocket,
        "completejourney": _iter_completejourney,
    }
    reader = readers.get(fmt)
    if reader is None:
        raise ReplayError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return reader(Path(path))
