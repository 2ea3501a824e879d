"""Input events: what the stream worker consumes from ``orders``, ``clicks``,
``promotions`` and ``inventory``. Every event carries ``event_id`` (the key of
deduplication), ``event_time`` (UTC) and ``schema_version``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas._base import (
    MAX_QUANTITY,
    SCHEMA_VERSION,
    Contract,
    Currency,
    Identifier,
    Price,
    Sku,
    Text,
    UtcDatetime,
)

SchemaVersion = Annotated[int, Field(ge=1, le=SCHEMA_VERSION)]


class Event(Contract):
    """Fields common to every input event."""

    event_id: Identifier = Field(description="Unique id; redelivery of the same id counts once")
    event_time: UtcDatetime
    schema_version: SchemaVersion = SCHEMA_VERSION


class OrderEvent(Event):
    """One order line. A negative ``quantity`` is a cancellation or a return."""

    type: Literal["order"] = "order"
    order_id: Identifier
    sku: Sku
    quantity: int = Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY)
    unit_price: Price = Field(description="Unit price paid (after the retailer's discount)")
    shelf_price: Price | None = Field(
        default=None, description="Unit price before the retailer's discount, when known"
    )
    currency: Currency = "GBP"
    customer_id: Identifier | None = None
    channel: Identifier | None = None
    country: Text | None = None

    @model_validator(mode="after")
    def _nonzero(self) -> OrderEvent:
        if self.quantity == 0:
            raise ValueError("quantity must not be zero")
        return self


ClickAction = Literal["view", "cart", "remove_from_cart", "purchase"]


class ClickEvent(Event):
    """A clickstream interaction with one product (REES46 / Retailrocket compatible)."""

    type: Literal["click"] = "click"
    action: ClickAction
    session_id: Identifier
    user_id: Identifier | None = None
    sku: Sku
    price: Price | None = None
    category_id: Identifier | None = None
    category_code: Text | None = None
    brand: Text | None = None
    transaction_id: Identifier | None = None


PromotionAction = Literal["start", "update", "end"]
PromotionKind = Literal["price_cut", "display", "mailer", "coupon"]


class PromotionEvent(Event):
    """A promotion starting, changing or ending for a set of SKUs or a category."""

    type: Literal["promotion"] = "promotion"
    promotion_id: Identifier
    action: PromotionAction
    kind: PromotionKind
    skus: list[Sku] = Field(default_factory=list, max_length=10_000)
    category: Identifier | None = None
    discount_depth: float = Field(ge=0.0, le=1.0, description="0.2 means 20% off")
    store_share: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Share of the stores it runs in (1.0: all)"
    )
    planned_start: UtcDatetime
    planned_end: UtcDatetime

    @model_validator(mode="after")
    def _coverage_and_dates(self) -> PromotionEvent:
        if not self.skus and self.category is None:
            raise ValueError("a promotion must cover at least one SKU or a category")
        if self.planned_end <= self.planned_start:
            raise ValueError("planned_end must be after planned_start")
        return self


class InventoryEvent(Event):
    """Stock position of one SKU."""

    type: Literal["inventory"] = "inventory"
    sku: Sku
    on_hand: int = Field(ge=0, le=1_000_000_000)
    on_order: int = Field(default=0, ge=0, le=1_000_000_000)
    lead_time_days: float = Field(ge=0.0, le=365.0)


AnyEvent = Annotated[
    OrderEvent | ClickEvent | PromotionEvent | InventoryEvent, Field(discriminator="type")
]
EVENT_MODELS: tuple[type[Event], ...] = (OrderEvent, ClickEvent, PromotionEvent, InventoryEvent)
