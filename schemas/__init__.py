"""demandcast's contracts: every event it consumes and every message it publishes.

>>> from schemas import OrderEvent, decode
>>> e = decode(OrderEvent, b'{"event_id": "x1", "event_time": 1291192560, '
...            b'"order_id": "536365", "sku": "85123A", "quantity": 6, "unit_price": 2.55}')
>>> e.event_time.isoformat(), e.currency
('2010-12-01T08:36:00+00:00', 'GBP')
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter

from schemas._base import (
    MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
    Contract,
    DemandcastError,
    SchemaError,
    decode,
    parse_event_time,
    validate,
)
from schemas.events import (
    EVENT_MODELS,
    AnyEvent,
    ClickEvent,
    Event,
    InventoryEvent,
    OrderEvent,
    PromotionEvent,
)
from schemas.outputs import (
    OUTPUT_MODELS,
    DataRange,
    DeadLetter,
    Forecast,
    ForecastStep,
    ModelUpdate,
    PricingAlert,
    RestockAlert,
    Window,
    WindowClosed,
)

ALL_MODELS: tuple[type[Contract], ...] = (*EVENT_MODELS, *OUTPUT_MODELS)

_any_event: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


def decode_any_event(raw: bytes) -> Event:
    """Decode a JSON event of any type, told apart by its ``type`` field."""
    from pydantic import ValidationError

    if len(raw) > MAX_MESSAGE_BYTES:
        raise SchemaError("Event", [("<message>", f"{len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")])
    try:
        return _any_event.validate_json(raw)
    except ValidationError as exc:
        raise SchemaError.from_validation_error("Event", exc) from None


def export_json_schemas(directory: Path) -> list[Path]:
    """Write ``<Model>.schema.json`` for every contract into ``directory``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in ALL_MODELS:
        path = directory / f"{model.__name__}.schema.json"
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"demandcast/{model.__name__}/v{SCHEMA_VERSION}"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


__all__ = [
    "ALL_MODELS",
    "EVENT_MODELS",
    "MAX_MESSAGE_BYTES",
    "OUTPUT_MODELS",
    "SCHEMA_VERSION",
    "AnyEvent",
    "ClickEvent",
    "Contract",
    "DataRange",
    "DeadLetter",
    "DemandcastError",
    "Event",
    "Forecast",
    "ForecastStep",
    "InventoryEvent",
    "ModelUpdate",
    "OrderEvent",
    "PricingAlert",
    "PromotionEvent",
    "RestockAlert",
    "SchemaError",
    "Window",
    "WindowClosed",
    "decode",
    "decode_any_event",
    "export_json_schemas",
    "parse_event_time",
    "validate",
]
