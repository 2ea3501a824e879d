"""The contracts: bounds, event-time parsing, error messages, JSON Schema export."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas import (
    ALL_MODELS,
    ClickEvent,
    DeadLetter,
    Forecast,
    InventoryEvent,
    OrderEvent,
    PromotionEvent,
    SchemaError,
    decode,
    decode_any_event,
    export_json_schemas,
    parse_event_time,
    validate,
)

ORDER = {
    "event_id": "uci:536365:1",
    "event_time": "2010-12-01T08:26:00Z",
    "order_id": "536365",
    "sku": "85123A",
    "quantity": 6,
    "unit_price": 2.55,
    "customer_id": "17850",
    "country": "United Kingdom",
}


def _raw(**changes: object) -> bytes:
    return json.dumps({**ORDER, **changes}).encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2010-12-01T08:26:00Z", datetime(2010, 12, 1, 8, 26, tzinfo=UTC)),
        ("2010-12-01 08:26:00", datetime(2010, 12, 1, 8, 26, tzinfo=UTC)),
        ("2010-12-01T09:26:00+01:00", datetime(2010, 12, 1, 8, 26, tzinfo=UTC)),
        (1291191960, datetime(2010, 12, 1, 8, 26, tzinfo=UTC)),
        (1291191960.5, datetime(2010, 12, 1, 8, 26, 0, 500000, tzinfo=UTC)),
        (1291191960000, datetime(2010, 12, 1, 8, 26, tzinfo=UTC)),
        ("1291191960000", datetime(2010, 12, 1, 8, 26, tzinfo=UTC)),
        (1291191960000000, datetime(2010, 12, 1, 8, 26, tzinfo=UTC)),
    ],
)
def test_event_time_accepts_iso_and_every_epoch_unit(value: object, expected: datetime) -> None:
    parsed = parse_event_time(value)
    assert parsed == expected
    assert parsed.tzinfo is not None and parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value", ["yesterday", -5, 10**20, True, None, "2150-01-01T00:00:00Z", "1" * 80]
)
def test_event_time_refuses_nonsense(value: object) -> None:
    with pytest.raises(ValueError):
        parse_event_time(value)


def test_order_event_decodes_and_round_trips() -> None:
    event = decode(OrderEvent, _raw())
    assert event.event_time == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    assert event.currency == "GBP"
    assert decode(OrderEvent, event.to_json()) == event
    assert decode_any_event(event.to_json()) == event


def test_cancellation_is_a_negative_quantity_but_zero_is_refused() -> None:
    assert decode(OrderEvent, _raw(quantity=-3)).quantity == -3
    with pytest.raises(SchemaError, match="quantity must not be zero"):
        decode(OrderEvent, _raw(quantity=0))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"unit_price": float("nan")}, "unit_price"),
        ({"unit_price": -1.0}, "unit_price"),
        ({"unit_price": 1e12}, "unit_price"),
        ({"quantity": 10**9}, "quantity"),
        ({"quantity": "six"}, "quantity"),
        ({"sku": ""}, "sku"),
        ({"sku": "x" * 65}, "sku"),
        ({"sku": "a\nb"}, "sku"),
        ({"currency": "pounds"}, "currency"),
        ({"event_time": "not a time"}, "event_time"),
        ({"surprise": 1}, "surprise"),
        ({"sku": "x" * 10_000_000}, "<message>"),
    ],
)
def test_bad_fields_are_named_in_the_error(changes: dict[str, object], field: str) -> None:
    raw = json.dumps({**ORDER, **changes}, allow_nan=True).encode()
    with pytest.raises(SchemaError) as info:
        decode(OrderEvent, raw)
    assert field in [name for name, _ in info.value.errors]
    assert field in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id": "x", "event_ti',
        b"\xff\xfe\xfd",
        b"",
        b"null",
        b"[1,2]",
        b'{"event_id": "\xff"}',
    ],
)
def test_garbage_gives_the_schema_error(raw: bytes) -> None:
    with pytest.raises(SchemaError):
        decode(OrderEvent, raw)
    with pytest.raises(SchemaError):
        decode_any_event(raw)


def test_click_event_carries_rees46_fields() -> None:
    click = ClickEvent(
        event_id="rees46:1",
        event_time="2019-10-01 00:00:00 UTC".replace(" UTC", "Z").replace(" ", "T"),
        action="cart",
        session_id="72d76fde-8bb3-4e00-8c23-a032dfed738c",
        user_id="541312140",
        sku="44600062",
        price=35.79,
        category_id="2103807459595387724",
        category_code="appliances.environment.water_heater",
        brand="shiseido",
    )
    assert decode_any_event(click.to_json()) == click


def test_promotion_needs_coverage_and_ordered_dates() -> None:
    base = {
        "event_id": "p1",
        "event_time": 0,
        "promotion_id": "spring",
        "action": "start",
        "kind": "price_cut",
        "discount_depth": 0.2,
        "planned_start": "2011-03-01T00:00:00Z",
        "planned_end": "2011-03-08T00:00:00Z",
    }
    with pytest.raises(SchemaError, match="at least one SKU or a category"):
        decode(PromotionEvent, json.dumps(base).encode())
    ok = decode(PromotionEvent, json.dumps({**base, "skus": ["85123A"]}).encode())
    assert ok.discount_depth == 0.2
    bad = {**base, "category": "gifts", "planned_end": "2011-02-01T00:00:00Z"}
    with pytest.raises(SchemaError, match="planned_end"):
        decode(PromotionEvent, json.dumps(bad).encode())
    with pytest.raises(SchemaError, match="discount_depth"):
        decode(
            PromotionEvent, json.dumps({**base, "category": "g", "discount_depth": 1.5}).encode()
        )


def test_inventory_refuses_negative_stock() -> None:
    with pytest.raises(SchemaError, match="on_hand"):
        validate(
            InventoryEvent,
            {"event_id": "i", "event_time": 0, "sku": "A", "on_hand": -1, "lead_time_days": 3},
        )


def _forecast(values: list[list[float]]) -> dict[str, object]:
    return {
        "sku": "85123A",
        "window": {"start": "2011-01-01T00:00:00Z", "end": "2011-01-01T01:00:00Z"},
        "model_version": "v1",
        "created_at": "2011-01-01T01:00:02Z",
        "freq": "D",
        "quantile_levels": [0.1, 0.5, 0.9],
        "steps": [
            {"timestamp": f"2011-01-0{i + 2}T00:00:00Z", "values": v} for i, v in enumerate(values)
        ],
    }


def test_forecast_quantiles_must_not_cross_or_go_negative() -> None:
    good = Forecast.model_validate(_forecast([[0.0, 1.0, 3.0], [1.0, 2.0, 2.0]]))
    assert decode(Forecast, good.to_json()) == good
    with pytest.raises(SchemaError, match="crossing"):
        decode(Forecast, json.dumps(_forecast([[2.0, 1.0, 3.0]])).encode())
    with pytest.raises(SchemaError, match="negative"):
        decode(Forecast, json.dumps(_forecast([[-1.0, 1.0, 3.0]])).encode())
    with pytest.raises(SchemaError, match="expected 3"):
        decode(Forecast, json.dumps(_forecast([[1.0, 3.0]])).encode())


def test_dead_letter_keeps_arbitrary_bytes_through_json() -> None:
    original = bytes(range(256))
    letter = DeadLetter(
        original=original,
        source_topic="orders",
        partition=3,
        offset=42,
        reason="bad",
        received_at=0,
    )
    assert decode(DeadLetter, letter.to_json()).original == original
    json.loads(letter.to_json())  # plain JSON, readable by kcat


def test_export_writes_one_valid_json_schema_per_model(tmp_path: Path) -> None:
    paths = export_json_schemas(tmp_path / "s")
    assert sorted(p.name for p in paths) == sorted(f"{m.__name__}.schema.json" for m in ALL_MODELS)
    for path in paths:
        schema = json.loads(path.read_text())
        assert schema["type"] == "object"
        assert schema["properties"]
        assert schema["$id"].startswith("demandcast/")
