"""A fast path for decoding the two high-volume events, orders and clicks.

``schemas.decode`` validates with pydantic; with its Python field validators that costs
about 10-20 µs an event, the largest single cost of ingestion. :func:`fast_decode` parses
with orjson and checks the *common, clean* shape of an :class:`~schemas.OrderEvent` or a
:class:`~schemas.ClickEvent` against the same constraints; when every check passes it
builds the model without re-validating (``model_construct``), otherwise it returns
``None`` and the caller uses ``schemas.decode``, which gives the authoritative answer and
the error message. So the fast path may only ever *accept less* than the contract, never
more: ``tests/unit/streams/test_fastdecode.py`` checks that whatever it accepts equals
what ``schemas.decode`` returns, on generated valid and invalid messages.

Messages with a backslash anywhere take the slow path: JSON can put a control character
into a string only through an escape, so without one no string needs the per-character
control-character check the contract's identifiers have.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import orjson

from schemas import ClickEvent, Event, OrderEvent, parse_event_time
from schemas._base import (
    MAX_ID_LENGTH,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_SKU_LENGTH,
    MAX_TEXT_LENGTH,
    SCHEMA_VERSION,
)

_CURRENCY = re.compile(r"[A-Z]{3}\Z")
_ORDER_NAMES = tuple(OrderEvent.model_fields)
_CLICK_NAMES = tuple(ClickEvent.model_fields)
_ORDER_FIELDS = frozenset(_ORDER_NAMES)
_CLICK_FIELDS = frozenset(_CLICK_NAMES)
_CLICK_ACTIONS = frozenset({"view", "cart", "remove_from_cart", "purchase"})
_times: dict[Any, Any] = {}
_TIME_CACHE_MAX = 50_000


def _ident(value: Any, longest: int = MAX_ID_LENGTH) -> bool:
    # no control characters: guaranteed by fast_decode, which takes only messages without
    # a backslash (JSON can carry a control character in a string only as an escape)
    return type(value) is str and 0 < len(value) <= longest


def _opt_ident(value: Any) -> bool:
    return value is None or _ident(value)


def _opt_text(value: Any) -> bool:
    return value is None or (type(value) is str and len(value) <= MAX_TEXT_LENGTH)


def _price(value: Any) -> float | None:
    if type(value) is int or type(value) is float:
        price = float(value)
        if math.isfinite(price) and 0.0 <= price <= MAX_PRICE:
            return price
    return None


def _time(value: Any) -> Any:
    if type(value) is not str and type(value) is not int:
        return None
    cached = _times.get(value)
    if cached is None:
        try:
            cached = parse_event_time(value)
        except ValueError:
            return None
        if len(_times) >= _TIME_CACHE_MAX:
            _times.clear()
        _times[value] = cached
    return cached


def _common(d: dict[str, Any], kind: str) -> dict[str, Any] | None:
    if d.get("type", kind) != kind or not _ident(d.get("event_id")):
        return None
    version = d.get("schema_version", SCHEMA_VERSION)
    if type(version) is not int or not 1 <= version <= SCHEMA_VERSION:
        return None
    when = _time(d.get("event_time"))
    if when is None or not _ident(d.get("sku"), MAX_SKU_LENGTH):
        return None
    return {
        "event_id": d["event_id"],
        "event_time": when,
        "schema_version": version,
        "type": kind,
        "sku": d["sku"],
    }


def _order(d: dict[str, Any]) -> OrderEvent | None:
    if not _ORDER_FIELDS.issuperset(d):
        return None
    base = _common(d, "order")
    if base is None or not _ident(d.get("order_id")):
        return None
    quantity = d.get("quantity")
    if type(quantity) is not int or quantity == 0 or not -MAX_QUANTITY <= quantity <= MAX_QUANTITY:
        return None
    price = _price(d.get("unit_price"))
    currency = d.get("currency", "GBP")
    if price is None or type(currency) is not str or _CURRENCY.match(currency) is None:
        return None
    shelf = d.get("shelf_price")
    if shelf is not None:
        shelf = _price(shelf)
        if shelf is None:
            return None
    customer, channel, country = d.get("customer_id"), d.get("channel"), d.get("country")
    if not (_opt_ident(customer) and _opt_ident(channel) and _opt_text(country)):
        return None
    base.update(
        order_id=d["order_id"],
        quantity=quantity,
        unit_price=price,
        shelf_price=shelf,
        currency=currency,
        customer_id=customer,
        channel=channel,
        country=country,
    )
    return _construct(OrderEvent, _ORDER_NAMES, base, d)


def _click(d: dict[str, Any]) -> ClickEvent | None:
    if not _CLICK_FIELDS.issuperset(d):
        return None
    base = _common(d, "click")
    if base is None or d.get("action") not in _CLICK_ACTIONS or not _ident(d.get("session_id")):
        return None
    price = d.get("price")
    if price is not None:
        price = _price(price)
        if price is None:
            return None
    user, category, txn = d.get("user_id"), d.get("category_id"), d.get("transaction_id")
    code, brand = d.get("category_code"), d.get("brand")
    if not (
        _opt_ident(user)
        and _opt_ident(category)
        and _opt_ident(txn)
        and _opt_text(code)
        and _opt_text(brand)
    ):
        return None
    base.update(
        action=d["action"],
        session_id=d["session_id"],
        user_id=user,
        price=price,
        category_id=category,
        category_code=code,
        brand=brand,
        transaction_id=txn,
    )
    return _construct(ClickEvent, _CLICK_NAMES, base, d)


def _construct(
    model: type[Any], names: tuple[str, ...], values: dict[str, Any], given: dict[str, Any]
) -> Any:
    """``model.model_construct(**values)`` for a complete set of field values, without its
    per-field Python overhead (about 15 µs an event): the same four attributes pydantic's
    own ``model_construct`` sets, fields in declaration order, ``model_fields_set`` the
    fields the message carried."""
    obj = object.__new__(model)
    setter = object.__setattr__
    setter(obj, "__dict__", {name: values[name] for name in names})
    setter(obj, "__pydantic_fields_set__", set(given))
    setter(obj, "__pydantic_extra__", None)
    setter(obj, "__pydantic_private__", None)
    return obj


_BUILDERS: dict[type[Event], Callable[[dict[str, Any]], Event | None]] = {
    OrderEvent: _order,
    ClickEvent: _click,
}


def fast_decode(model: type[Event], raw: bytes) -> Event | None:
    """The event, when ``raw`` is a clean order or click; ``None`` means "ask pydantic"."""
    builder = _BUILDERS.get(model)
    if builder is None or len(raw) > 65_536 or b"\\" in raw:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    return builder(data)
