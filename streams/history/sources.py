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

Dirty files (a row is rejected with a reason, counted by the replay, never read with a
column missing; a file that is not the format at all is a :class:`ReplayError`):

- CSV columns are found by name in the header (a UTF-8 byte-order mark is skipped, extra
  columns are ignored). A header without a required column is an error naming the missing
  and the unexpected columns.
- A row with another number of fields than the header: ``wrong column count``; the same
  when it is the file's last line and has no line break after it (a file cut mid-row):
  ``truncated row``. A row cut inside its last field keeps every field and cannot be told
  from a complete one. In ``jsonl``, an unparsable last line without a line break is a
  ``truncated row`` too.
- Encoding: files are UTF-8. A row with bytes that are not UTF-8 (a latin-1 or cp1252
  line in a UTF-8 file) is rejected as ``invalid UTF-8``, never decoded with a guessed
  encoding (the detail shows the bytes and their latin-1 reading); convert such a file
  first, for example ``iconv -f cp1252 -t utf-8``.
- A line the CSV parser refuses: ``unparsable CSV row``; a copy of the header inside the
  file (concatenated exports): ``repeated header``; blank lines are skipped.
- A ``.gz`` file that ends before its end-of-stream marker (a cut download): its rows up
  to the cut are read and one ``truncated gzip file`` rejection is counted.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, cast
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


def _open_bytes(path: Path) -> IO[bytes]:
    if not path.exists():
        raise ReplayError(f"no such file: {path}")
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def open_text(path: Path) -> io.TextIOBase:
    """Open a log as UTF-8 text, transparently gunzipping ``.gz`` files.

    A byte-order mark is skipped; bytes that are not UTF-8 are kept as lone surrogates
    (``surrogateescape``) so that the row holding them can be rejected, not the file.
    """
    return io.TextIOWrapper(
        _open_bytes(path), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )


def _printable(text: str) -> str:
    """``text`` with any undecodable bytes shown as U+FFFD (safe to print)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _not_utf8(fields: list[str], names: list[str]) -> str | None:
    """Where ``fields`` hold bytes that are not UTF-8, described; None when they do not."""
    for i, value in enumerate(fields):
        if value.isascii():
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raw = value[exc.start :].encode("utf-8", "surrogateescape")[:12]
            name = names[i] if i < len(names) else f"field {i + 1}"
            return (
                f"{_printable(name)}: bytes {raw!r} (latin-1 would read {raw.decode('latin-1')!r})"
            )
    return None


class _Lines:
    """A text file's lines, remembering whether the last one read ended with a line break
    and whether a gzip stream ended before its end marker (then iteration just stops)."""

    def __init__(self, fh: io.TextIOBase, path: Path) -> None:
        self.fh = fh
        self.path = path
        self.ended = True
        self.gzip_cut = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            line = self.fh.readline()
        except EOFError:
            self.gzip_cut = True
            raise StopIteration from None
        except gzip.BadGzipFile as exc:
            raise ReplayError(f"{self.path} is not a gzip file ({exc})") from None
        if not line:
            raise StopIteration
        self.ended = line.endswith(("\n", "\r"))
        return line


def _header_error(path: Path, name: str, header: list[str], columns: tuple[str, ...]) -> str:
    missing = [c for c in columns if c not in header]
    repeated = sorted({c for c in columns if header.count(c) > 1})
    unexpected = [h for h in header if h not in columns]
    parts = []
    if missing:
        parts.append(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if repeated:
        parts.append(f"repeated column{'s' if len(repeated) > 1 else ''} {', '.join(repeated)}")
    if unexpected:
        shown = ", ".join(_printable(h) or "(empty)" for h in unexpected[:10])
        parts.append(f"unexpected column{'s' if len(unexpected) > 1 else ''} {shown}")
    return (
        f"{path} is not a {name} CSV: {'; '.join(parts)} "
        f"(header {_printable(','.join(header))!r}; expected {','.join(columns)})"
    )


def _csv_records(
    path: Path, columns: tuple[str, ...], name: str
) -> Iterator[tuple[int, list[str]] | Rejected]:
    """The rows of a CSV log as ``(line, values of columns)``, or a :class:`Rejected`.

    Columns are found by name; a row is rejected unless it has as many fields as the
    header and all of them are UTF-8 (see the module's "Dirty files").
    """
    with open_text(path) as fh:
        lines = _Lines(fh, path)
        reader = csv.reader(lines)
        try:
            first = next(reader, None)
        except csv.Error as exc:
            raise ReplayError(f"{path} is not a {name} CSV: unparsable header ({exc})") from None
        if first is None:
            raise ReplayError(f"{path} is empty: expected a {name} CSV ({','.join(columns)})")
        header = [h.strip() for h in first]
        if not set(columns) <= set(header) or any(header.count(c) > 1 for c in columns):
            raise ReplayError(_header_error(path, name, header, columns))
        index = [header.index(c) for c in columns]
        width = len(header)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield Rejected(reader.line_num, "unparsable CSV row", str(exc))
                continue
            line = reader.line_num
            if not row or row == [""]:
                continue
            bad = _not_utf8(row, header)
            if bad is not None:
                yield Rejected(line, "invalid UTF-8", bad)
                continue
            if len(row) != width:
                if len(row) < width and not lines.ended:
                    yield Rejected(
                        line,
                        "truncated row",
                        f"{len(row)} of {width} fields and no line break at the end of the file",
                    )
                else:
                    yield Rejected(
                        line, "wrong column count", f"{len(row)} fields, the header has {width}"
                    )
                continue
            if [v.strip() for v in row] == header:
                yield Rejected(line, "repeated header")
                continue
            yield line, [row[i] for i in index]
        if lines.gzip_cut:
            yield Rejected(
                reader.line_num + 1,
                "truncated gzip file",
                f"the compressed stream ends before its end marker after line {reader.line_num}",
            )


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
    for record in _csv_records(path, rules.UCI_COLUMNS, "UCI Online Retail"):
        if isinstance(record, Rejected):
            yield record
            continue
        row_no, row = record
        invoice, code, _desc, qty_s, date_s, price_s, customer, country = (x.strip() for x in row)
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
    with _open_bytes(path) as fh:
        row_no = 0
        while True:
            try:
                raw = fh.readline()
            except EOFError:
                yield Rejected(
                    row_no + 1,
                    "truncated gzip file",
                    f"the compressed stream ends before its end marker after line {row_no}",
                )
                return
            except gzip.BadGzipFile as exc:
                raise ReplayError(f"{path} is not a gzip file ({exc})") from None
            if not raw:
                return
            row_no += 1
            if row_no == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            text = raw.strip()
            if not text:
                continue
            try:
                text.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = text[exc.start : exc.start + 12]
                yield Rejected(
                    row_no,
                    "invalid UTF-8",
                    f"byte {exc.start}: {bad!r} (latin-1 would read {bad.decode('latin-1')!r})",
                )
                continue
            try:
                yield decode_any_event(text)
            except SchemaError as exc:
                if not raw.endswith(b"\n") and not _is_json(text):
                    yield Rejected(
                        row_no, "truncated row", "unparsable JSON and no line break at the end"
                    )
                else:
                    yield Rejected(row_no, *_schema_reason(exc))


def _is_json(text: bytes) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def iter_rees46(path: Path) -> Iterator[ClickEvent | Rejected]:
    """REES46 behaviour events: view / cart / remove_from_cart / purchase."""
    ids = _Ids("rees46")
    for record in _csv_records(path, REES46_COLUMNS, "REES46"):
        if isinstance(record, Rejected):
            yield record
            continue
        row_no, values = record
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
    for record in _csv_records(path, RETAILROCKET_COLUMNS, "Retailrocket"):
        if isinstance(record, Rejected):
            yield record
            continue
        row_no, fields = record
        values = [v.strip() for v in fields]
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
