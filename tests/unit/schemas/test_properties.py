"""Property-based tests: JSON round trip, and no input raises anything but SchemaError."""

from __future__ import annotations

import contextlib
import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import (
    ALL_MODELS,
    EVENT_MODELS,
    ClickEvent,
    InventoryEvent,
    OrderEvent,
    SchemaError,
    decode,
    decode_any_event,
)

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")

sku = st.text(string.ascii_letters + string.digits + "-_ ./", min_size=1, max_size=64)
ident = st.text(string.printable.strip() or "x", min_size=1, max_size=40).filter(
    lambda s: all(ord(c) >= 32 for c in s)
)
epoch_ms = st.integers(min_value=0, max_value=4_102_444_799_000)

orders = st.builds(
    OrderEvent,
    event_id=ident,
    event_time=epoch_ms,
    order_id=ident,
    sku=sku,
    quantity=st.integers(-1_000_000, 1_000_000).filter(bool),
    unit_price=st.floats(0, 1_000_000, allow_nan=False, allow_infinity=False),
    customer_id=st.none() | ident,
    country=st.none() | st.text(max_size=40),
)
clicks = st.builds(
    ClickEvent,
    event_id=ident,
    event_time=epoch_ms,
    action=st.sampled_from(["view", "cart", "remove_from_cart", "purchase"]),
    session_id=ident,
    sku=sku,
    price=st.none() | st.floats(0, 1_000_000, allow_nan=False),
)
inventory = st.builds(
    InventoryEvent,
    event_id=ident,
    event_time=epoch_ms,
    sku=sku,
    on_hand=st.integers(0, 10**9),
    on_order=st.integers(0, 10**9),
    lead_time_days=st.floats(0, 365, allow_nan=False),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)


@given(st.one_of(orders, clicks, inventory))
def test_events_round_trip_through_json(event: OrderEvent | ClickEvent | InventoryEvent) -> None:
    raw = event.to_json()
    assert decode(type(event), raw) == event
    assert decode_any_event(raw) == event


@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_the_schema_error(raw: bytes) -> None:
    for model in ALL_MODELS:
        try:
            decode(model, raw)
        except SchemaError as exc:
            assert exc.errors
    with contextlib.suppress(SchemaError):
        decode_any_event(raw)


@given(json_values)
def test_arbitrary_json_raises_only_the_schema_error(value: object) -> None:
    raw = json.dumps(value, allow_nan=True).encode()
    for model in EVENT_MODELS:
        try:
            decode(model, raw)
        except SchemaError as exc:
            assert all(field and reason for field, reason in exc.errors)


@given(
    orders,
    st.dictionaries(
        st.sampled_from(["quantity", "unit_price", "sku", "event_time", "order_id"]),
        json_values,
        min_size=1,
    ),
)
def test_corrupted_fields_are_named(event: OrderEvent, corruption: dict[str, object]) -> None:
    data = {**json.loads(event.to_json()), **corruption}
    raw = json.dumps(data, allow_nan=True).encode()
    try:
        decoded = decode(OrderEvent, raw)
    except SchemaError as exc:
        named = {field.split(".")[0] for field, _ in exc.errors}
        assert named & (set(corruption) | {"<message>"}), exc.errors
    else:
        assert decoded.sku == data["sku"] or "sku" not in corruption
