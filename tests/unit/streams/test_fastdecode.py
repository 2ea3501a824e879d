"""The fast decoding path never accepts more than the contract, nor anything different."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import ClickEvent, OrderEvent, SchemaError, decode
from streams.ingest.fastdecode import fast_decode

text = st.one_of(
    st.text(max_size=5),
    st.text(min_size=60, max_size=70),
    st.sampled_from(["", "A", "85123A", "a\nb", "x" * 129, "é"]),
)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**7), 10**7),
    st.floats(allow_nan=False),
    text,
    st.lists(st.integers(-100, 100), max_size=2),
)
times = st.one_of(
    st.sampled_from(
        [
            "2011-01-01T10:00:00Z",
            "2011-01-01 10:00:00",
            "1291192560",
            "not a time",
            "2200-01-01T00:00:00Z",
        ]
    ),
    st.integers(-5, 5_000_000_000_000),
    st.floats(0, 2e9),
    st.none(),
)


def maybe(strategy):
    return st.one_of(st.just(...), strategy)  # ... means "leave the field out"


def event_dicts(fields: dict) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({k: maybe(v) for k, v in fields.items()}).map(
        lambda d: {k: v for k, v in d.items() if v is not ...}
    )


orders = event_dicts(
    {
        "type": st.sampled_from(["order", "click", "x"]),
        "event_id": st.one_of(text, anything),
        "event_time": times,
        "schema_version": st.one_of(st.sampled_from([1, 2, 0]), anything),
        "order_id": st.one_of(text, anything),
        "sku": st.one_of(text, anything),
        "quantity": st.one_of(st.sampled_from([1, -3, 0, 1_000_001, 2.0]), anything),
        "unit_price": st.one_of(st.sampled_from([2.55, 0, -1.0, 1e7, 3]), anything),
        "currency": st.one_of(st.sampled_from(["GBP", "gbp", "EURO", "USD\n"]), anything),
        "customer_id": st.one_of(text, anything),
        "channel": st.one_of(text, st.none()),
        "country": st.one_of(text, anything),
        "extra": anything,
    }
)

clicks = event_dicts(
    {
        "type": st.sampled_from(["click", "order"]),
        "event_id": text,
        "event_time": times,
        "action": st.sampled_from(["view", "cart", "purchase", "remove_from_cart", "zap"]),
        "session_id": st.one_of(text, anything),
        "sku": text,
        "price": st.one_of(st.sampled_from([1.0, -1.0, 0, 2e6]), anything),
        "user_id": st.one_of(text, anything),
        "category_id": text,
        "category_code": st.one_of(text, anything),
        "brand": text,
        "transaction_id": st.one_of(text, st.none()),
    }
)


def check(model, data) -> bool:
    raw = orjson.dumps(data)
    fast = fast_decode(model, raw)
    try:
        slow = decode(model, raw)
    except SchemaError:
        assert fast is None, f"fast path accepted what the contract refuses: {data}"
        return False
    if fast is not None:
        assert fast == slow
        assert fast.model_dump() == slow.model_dump()
        assert fast.to_json() == slow.to_json()
        assert fast.model_fields_set == slow.model_fields_set
    return True


@settings(max_examples=400, deadline=None)
@given(orders)
def test_orders(data) -> None:
    check(OrderEvent, data)


@settings(max_examples=300, deadline=None)
@given(clicks)
def test_clicks(data) -> None:
    check(ClickEvent, data)


def test_clean_events_take_the_fast_path() -> None:
    order = OrderEvent(
        event_id="e1",
        event_time="2011-01-01T10:00:00Z",
        order_id="1",
        sku="A",
        quantity=-2,
        unit_price=2.55,
        customer_id="17850",
    )
    click = ClickEvent(
        event_id="c1", event_time=1291192560, action="cart", session_id="s", sku="B", price=3
    )
    assert fast_decode(OrderEvent, order.to_json()) == order
    assert fast_decode(ClickEvent, click.to_json()) == click
    assert fast_decode(OrderEvent, b"[1]") is None
    assert fast_decode(OrderEvent, b"{bad") is None
