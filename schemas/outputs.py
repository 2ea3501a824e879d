"""Output messages: what demandcast publishes for anyone to subscribe to."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from schemas._base import MAX_MESSAGE_BYTES, Contract, Identifier, Sku, Text, UtcDatetime
from schemas.events import SchemaVersion

_SCHEMA = {"schema_version": 1}
Frequency = Literal["h", "D", "W"]


class Window(Contract):
    """An event-time window ``[start, end)``."""

    start: UtcDatetime
    end: UtcDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError("window end must be after its start")
        return self


class ForecastStep(Contract):
    """One horizon step: its period start and one value per quantile level."""

    timestamp: UtcDatetime
    values: list[float] = Field(min_length=1, max_length=99)


class Forecast(Contract):
    """A probabilistic forecast of one SKU, made when ``window`` closed.

    ``steps[i].values[j]`` is the ``quantile_levels[j]`` quantile of demand in step ``i``;
    values are non-negative and non-decreasing in the level. The point forecast is the
    median (level 0.5).
    """

    schema_version: SchemaVersion = 1
    sku: Sku
    window: Window
    model_version: Identifier
    created_at: UtcDatetime
    freq: Frequency
    quantile_levels: list[float] = Field(min_length=1, max_length=99)
    steps: list[ForecastStep] = Field(min_length=1, max_length=1_000)

    @model_validator(mode="after")
    def _consistent(self) -> Forecast:
        levels = self.quantile_levels
        if any(not 0.0 < q < 1.0 for q in levels) or sorted(set(levels)) != levels:
            raise ValueError("quantile_levels must be strictly increasing and inside (0, 1)")
        for i, step in enumerate(self.steps):
            if len(step.values) != len(levels):
                raise ValueError(
                    f"steps[{i}] has {len(step.values)} values, expected {len(levels)}"
                )
            if step.values[0] < 0:
                raise ValueError(f"steps[{i}] has a negative quantile")
            if any(b < a for a, b in zip(step.values, step.values[1:], strict=False)):
                raise ValueError(f"steps[{i}] has crossing quantiles")
        return self


class RestockAlert(Contract):
    """Demand over lead time plus review period exceeds stock on hand plus on order."""

    schema_version: SchemaVersion = 1
    alert_id: Identifier
    sku: Sku
    status: Literal["open", "resolved"]
    window: Window
    model_version: Identifier
    created_at: UtcDatetime
    service_level: float = Field(gt=0.0, lt=1.0)
    demand_over_lead_time: float = Field(ge=0.0)
    lead_time_days: float = Field(ge=0.0, le=365.0)
    review_period_days: float = Field(ge=0.0, le=365.0)
    on_hand: int = Field(ge=0)
    on_order: int = Field(ge=0)
    recommended_order_qty: int = Field(ge=0)
    days_of_cover: float = Field(ge=0.0)
    expected_stockout_date: date | None = None


class PricingAlert(Contract):
    """Demand running outside its forecast interval, or a promotion's lift off plan.

    A signal for a pricing team with its evidence, not a price decision.
    """

    schema_version: SchemaVersion = 1
    alert_id: Identifier
    sku: Sku
    kind: Literal["surge", "slump", "promo_lift_off_plan"]
    window: Window
    model_version: Identifier
    created_at: UtcDatetime
    observed: list[float] = Field(min_length=1, max_length=1_000)
    forecast_median: list[float] = Field(min_length=1, max_length=1_000)
    interval_lower: list[float] = Field(min_length=1, max_length=1_000)
    interval_upper: list[float] = Field(min_length=1, max_length=1_000)
    windows: int = Field(ge=1, description="Consecutive windows outside the interval")
    promotion_id: Identifier | None = None
    expected_lift: float | None = None
    realised_lift: float | None = None
    evidence: Text

    @model_validator(mode="after")
    def _aligned(self) -> PricingAlert:
        n = len(self.observed)
        lengths = (len(self.forecast_median), len(self.interval_lower), len(self.interval_upper))
        if any(length != n for length in lengths):
            raise ValueError("observed, forecast_median and the interval must be equally long")
        return self


class DeadLetter(Contract):
    """An input message that could not be processed, kept whole with the reason."""

    schema_version: SchemaVersion = 1
    original: bytes = Field(max_length=MAX_MESSAGE_BYTES, description="base64 in JSON")
    truncated: bool = False
    source_topic: Identifier
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    reason: str = Field(max_length=4_096)
    received_at: UtcDatetime


class DataRange(Contract):
    """The daily history a decision was made on."""

    start: str = Field(max_length=32)
    end: str = Field(max_length=32)
    num_series: int = Field(ge=0)
    fingerprint: str = Field(max_length=128)


class ModelUpdate(Contract):
    """A change of the serving (champion) model, or a new candidate.

    ``action``: ``candidate`` (a fine-tuned version passed the offline evaluation and
    forecasts in shadow as challenger), ``promote``, ``reject`` (a challenger lost live),
    ``rollback`` (a promoted champion fell behind its predecessor on probation). ``stage``
    says which evaluation decided; ``figures`` holds each model's scores by role
    (``champion``, ``candidate``, ``challenger``, ``previous``) and stage."""

    schema_version: SchemaVersion = 1
    version: Identifier
    parent_version: Identifier | None = None
    action: Literal["candidate", "promote", "reject", "rollback"]
    created_at: UtcDatetime
    metrics: dict[str, float] = Field(default_factory=dict, max_length=256)
    reason: Text = ""
    stage: Literal["offline", "live", "probation"] | None = None
    triggers: list[Identifier] = Field(default_factory=list, max_length=16)
    figures: dict[Identifier, dict[Identifier, float]] = Field(default_factory=dict, max_length=16)
    data: DataRange | None = None
    event_time: UtcDatetime | None = None


class WindowClosed(Contract):
    """The watermark passed ``window.end``: these SKUs' features changed in it."""

    schema_version: SchemaVersion = 1
    window: Window
    partition: int = Field(ge=0)
    skus: list[Sku] = Field(max_length=100_000)
    closed_at: UtcDatetime


OUTPUT_MODELS: tuple[type[Contract], ...] = (
    Forecast,
    RestockAlert,
    PricingAlert,
    DeadLetter,
    ModelUpdate,
    WindowClosed,
)
