"""Restock and pricing alerts for one batch of forecasts: the pure rules of
:mod:`streams.alerts.rules` applied with the memory of :mod:`streams.alerts.state`.

The forecast worker calls :meth:`AlertEvaluator.evaluate` after publishing a batch's
forecasts, for the SKUs whose window is the newest forecast for them. Per SKU:

- **restock**: when stock on hand plus on order is below the reorder point (the
  service-level quantile of demand over the lead time, an interval total of
  :mod:`models.intervals` with the model's ``interval_rho``; the order brings it up to the
  same quantile over lead time plus review period), or an alert is open, the
  assessment may open an alert, publish it again (the recommended quantity moved by
  ``restock_repeat_change`` of it, or the stock-out date by ``restock_repeat_days``) or
  resolve it;
- **pricing**: the first window of a day evaluates the day before against what the first
  forecast of that day expected: every ``pricing_windows`` days, a surge or slump alert when
  the block's total demand falls outside the 80% interval of that total (as the first
  forecast of the block's first day gave it), and for a promoted day a lift far off the
  lift the model expected; then it keeps what it expects of today.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from schemas import PricingAlert, RestockAlert, Window
from streams.alerts.rules import (
    Deviation,
    OpenRestock,
    RestockArrays,
    RestockAssessment,
    alert_id,
    assess_restock_many,
    lift_off_plan,
    quantile_column,
    restock_transition,
    total_deviation,
)
from streams.alerts.state import (
    DayExpectation,
    dump_deviations,
    dump_open,
    parse_deviations,
    parse_open,
)
from streams.serving.inputs import ForecastBatch
from streams.serving.model_holder import ServingModel
from streams.serving.planning import day_floor
from streams.settings import Settings
from streams.store.keys import KeyLayout

MIN_HISTORY_DAYS_FOR_PRICING = 14
"""Pricing alerts wait until a SKU has sold for two weeks: before that its forecast
interval rests on too little history to call demand outside it a surge or a slump."""

Publish = Callable[[str, str, bytes], None]
"""Publish ``(topic, sku, payload)``."""


@dataclass(frozen=True)
class AlertContext:
    model: ServingModel
    window: Window
    today: date
    created: datetime
    weights: list[np.ndarray]
    """Interpolation weights of the 0.1, 0.5 and 0.9 quantiles."""

    def header(self, kind: str, sku: str) -> dict[str, Any]:
        """The fields every alert of this window carries: id, SKU, window, model, time."""
        return {
            "alert_id": alert_id(kind, sku, self.window),
            "sku": sku,
            "window": self.window,
            "model_version": self.model.version,
            "created_at": self.created,
        }


@dataclass
class AlertCounts:
    restock: int = 0
    pricing: int = 0


class AlertEvaluator:
    """Evaluates the alert rules of a batch, publishes the alerts with ``publish`` and
    queues the changed alert memory on a Redis pipeline."""

    def __init__(self, settings: Settings, layout: KeyLayout, publish: Publish) -> None:
        self.settings = settings
        self.layout = layout
        self.publish = publish

    def evaluate(self, batch: ForecastBatch, pipe: Any) -> AlertCounts:
        """Restock and pricing rules for the SKUs of one batch; return what was published."""
        skus, quantiles, units, inputs = batch.skus, batch.quantiles, batch.units, batch.inputs
        baseline_median = batch.baseline_median
        sold = units > 0
        history_days = np.where(sold.any(axis=1), units.shape[1] - sold.argmax(axis=1), 0)
        ctx = AlertContext(
            model=batch.model,
            window=batch.work.window,
            today=day_floor(batch.work.window.end).date(),
            created=datetime.now(UTC),
            weights=[quantile_column(batch.model.quantile_levels, q) for q in (0.1, 0.5, 0.9)],
        )
        state, current = inputs.state, inputs.current
        rate = None  # mean daily units since first sale: the order intervals' demand rate
        if self.settings.restock_order_cost_unit_days > 0:
            rate = units.sum(axis=1) / np.maximum(history_days, 1)
        assessed = self._restock_assessments(ctx, skus, quantiles, state, inputs.open_raw, rate)
        restock = np.zeros(len(skus), dtype=bool) if assessed is None else assessed[0] & current
        # the interval of the N-day total only where today's expectation is still to be set
        # (a SKU's first window of the day): every later window of the day skips it
        fresh = [
            i
            for i in range(len(skus))
            if current[i] and not DayExpectation.is_for(inputs.expect_raw[i], ctx.today)
        ]
        totals = np.zeros((len(skus), 3))
        if fresh:
            totals[fresh] = self._total_intervals(ctx, quantiles[fresh])
        counts = AlertCounts()
        for i, sku in enumerate(skus):
            if not current[i]:
                continue
            if restock[i] and assessed is not None:
                previous = parse_open(inputs.open_raw[i])
                now = assessed[1].one(i, ctx.today)
                counts.restock += self._restock(ctx, sku, now, state[sku], previous, pipe)
            expect_raw = inputs.expect_raw[i]
            if DayExpectation.is_for(expect_raw, ctx.today):
                continue  # today's expectation is set and yesterday's was evaluated
            expected = DayExpectation.parse(expect_raw)
            seasoned = history_days[i] >= MIN_HISTORY_DAYS_FOR_PRICING
            if seasoned and expected is not None and expected.day == ctx.today - timedelta(days=1):
                observed = float(units[i, -1]) if units.shape[1] else 0.0
                history = parse_deviations(inputs.hist_raw[i])
                counts.pricing += self._deviation(ctx, sku, expected, observed, history, pipe)
                counts.pricing += self._promotion_lift(ctx, sku, expected, observed)
            if expected is None or expected.day != ctx.today:
                baseline = None if baseline_median is None else float(baseline_median[i])
                today = self._expectation(ctx, quantiles[i], state[sku], baseline, totals[i])
                pipe.hset(self.layout.day_expectations, sku, today.dump())
        return counts

    def _total_intervals(self, ctx: AlertContext, quantiles: np.ndarray) -> np.ndarray:
        """``(N, 3)``: the 0.1, 0.5 and 0.9 quantiles of each SKU's demand over the
        ``pricing_windows`` days starting today (the interval the pricing rule judges)."""
        from models.intervals import interval_quantiles

        n = min(self.settings.pricing_windows, quantiles.shape[1])
        return interval_quantiles(
            quantiles, ctx.model.quantile_levels, [n], [0.1, 0.5, 0.9], ctx.model.interval_rho
        )[:, 0, :]

    def _expectation(
        self,
        ctx: AlertContext,
        values: np.ndarray,
        st: dict[str, Any],
        baseline: float | None,
        total: np.ndarray,
    ) -> DayExpectation:
        """What the forecast ``values`` of a SKU say about today (and the N-day total
        ``total`` starting today: its 0.1, 0.5 and 0.9 quantiles)."""
        day0 = values[0]
        lower, median, upper = (float(day0 @ w) for w in ctx.weights)
        promos = st["promotions"]
        return DayExpectation(
            day=ctx.today,
            lower=lower,
            median=median,
            upper=upper,
            promotion_id=promos[0]["promotion_id"] if promos else None,
            baseline=baseline if baseline is not None and promos else median,
            total_lower=float(total[0]),
            total_median=float(total[1]),
            total_upper=float(total[2]),
        )

    def _restock_assessments(
        self,
        ctx: AlertContext,
        skus: list[str],
        quantiles: np.ndarray,
        state: dict[str, dict[str, Any]],
        open_raw: list[Any],
        demand_rate: np.ndarray | None,
    ) -> tuple[np.ndarray, RestockArrays] | None:
        """Which SKUs can change their restock alert — those with inventory whose stock
        position is below their reorder point, and those with an open alert (it may resolve) —
        and the assessment of every SKU with inventory (all at once, in numpy); None when
        no SKU of the batch has inventory."""
        s = self.settings
        with_stock = np.array([state[sku]["on_hand"] is not None for sku in skus], dtype=bool)
        if not with_stock.any():
            return None
        arrays = assess_restock_many(
            quantiles,
            ctx.model.quantile_levels,
            on_hand=np.array([state[sku]["on_hand"] or 0 for sku in skus]),
            on_order=np.array([state[sku]["on_order"] or 0 for sku in skus]),
            lead_time_days=np.array([state[sku]["lead_time_days"] or 0.0 for sku in skus]),
            review_period_days=s.restock_review_days,
            service_level=s.restock_service_level,
            rho=ctx.model.interval_rho,
            order_cost_unit_days=s.restock_order_cost_unit_days,
            demand_rate=demand_rate,
        )
        is_open = np.array([raw is not None for raw in open_raw], dtype=bool)
        return np.asarray(with_stock & (arrays.needs_restock | is_open)), arrays

    def _restock(
        self,
        ctx: AlertContext,
        sku: str,
        assessment: RestockAssessment,
        st: dict[str, Any],
        previous: OpenRestock | None,
        pipe: Any,
    ) -> int:
        """Open, publish again or resolve the SKU's restock alert; return the alerts published."""
        s = self.settings
        transition = restock_transition(
            previous,
            assessment,
            change_ratio=s.restock_repeat_change,
            stockout_days=s.restock_repeat_days,
        )
        if transition is None:
            return 0
        alert = RestockAlert(
            **ctx.header(f"restock-{transition}", sku),
            status="open" if transition == "open" else "resolved",
            service_level=s.restock_service_level,
            demand_over_lead_time=assessment.demand_over_lead_time,
            lead_time_days=st["lead_time_days"] or 0.0,
            review_period_days=s.restock_review_days
            if assessment.review_period_days is None
            else assessment.review_period_days,
            on_hand=st["on_hand"],
            on_order=st["on_order"] or 0,
            recommended_order_qty=assessment.recommended_order_qty,
            days_of_cover=assessment.days_of_cover,
            expected_stockout_date=assessment.expected_stockout_date,
        )
        self.publish(s.topic_alerts_restock, sku, alert.to_json())
        if transition == "open":
            opened = OpenRestock(
                assessment.recommended_order_qty, assessment.expected_stockout_date
            )
            pipe.hset(self.layout.open_restocks, sku, dump_open(opened))
        else:
            pipe.hdel(self.layout.open_restocks, sku)
        return 1

    def _deviation(
        self,
        ctx: AlertContext,
        sku: str,
        expected: DayExpectation,
        observed: float,
        history: list[Deviation],
        pipe: Any,
    ) -> int:
        """Yesterday's demand joins the SKU's block of ``pricing_windows`` days; a full
        block's total against the 80% interval of that total: a surge or slump alert outside
        it. Returns the alerts published."""
        n = self.settings.pricing_windows
        history = history[-(n - 1) :] if n > 1 else []
        history.append(
            Deviation(observed, expected.total_lower, expected.total_median, expected.total_upper)
        )
        kind = total_deviation(history, n)
        published = 0
        if kind is not None:
            first, total = history[-n], sum(d.observed for d in history[-n:])
            side = "above" if kind == "surge" else "below"
            alert = PricingAlert(
                **ctx.header(f"pricing-{kind}", sku),
                kind="surge" if kind == "surge" else "slump",
                observed=[total],
                forecast_median=[first.median],
                interval_lower=[first.lower],
                interval_upper=[first.upper],
                windows=n,
                evidence=(
                    f"demand over the {n} days up to {expected.day} {side} the 80% forecast "
                    f"interval of that total: observed {total:g} (daily "
                    f"{[round(d.observed, 1) for d in history[-n:]]}) vs median "
                    f"{first.median:.1f}, interval {first.lower:.1f}..{first.upper:.1f}"
                ),
            )
            self.publish(self.settings.topic_alerts_pricing, sku, alert.to_json())
            published = 1
        if len(history) >= n:
            history = []  # the block is judged; the next one starts tomorrow
        pipe.hset(self.layout.deviations, sku, dump_deviations(history))
        return published

    def _promotion_lift(
        self, ctx: AlertContext, sku: str, expected: DayExpectation, observed: float
    ) -> int:
        """A promoted day whose realised lift is far from the lift the model expected;
        returns the alerts published."""
        if expected.promotion_id is None:
            return 0
        realised = lift_off_plan(observed, expected.baseline, expected.expected_lift)
        if realised is None:
            return 0
        alert = PricingAlert(
            **ctx.header("pricing-promo", sku),
            kind="promo_lift_off_plan",
            observed=[observed],
            forecast_median=[expected.median],
            interval_lower=[expected.lower],
            interval_upper=[expected.upper],
            windows=1,
            promotion_id=expected.promotion_id,
            expected_lift=round(expected.expected_lift, 4),
            realised_lift=round(realised, 4),
            evidence=(
                f"promotion {expected.promotion_id} on {expected.day}: observed {observed:g} "
                f"units against {expected.baseline:.1f} without the promotion, a lift of "
                f"{realised:+.0%} where the model expected {expected.expected_lift:+.0%}"
            ),
        )
        self.publish(self.settings.topic_alerts_pricing, sku, alert.to_json())
        return 1
