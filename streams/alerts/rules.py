"""Restock and pricing alerts: pure decisions over one SKU's forecast, stock and history.

The forecast worker calls these after each window's forecasts and publishes what they
return; the functions themselves do no I/O, so every rule is tested without a broker.

Forecast arrays have shape ``(horizon, num_quantiles)``: ``values[d, j]`` is the
``levels[j]`` quantile of demand on day ``d`` after the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from schemas import Window

MAX_COVER_DAYS = 3650.0
"""Days of cover reported when expected demand is zero (ten years stands for 'never')."""


def quantile_column(levels: np.ndarray | list[float], level: float) -> np.ndarray:
    """Interpolation weights that pick ``level`` out of forecast quantile ``levels``.

    Returns a vector ``w`` of shape ``(num_quantiles,)`` with ``values @ w`` the linearly
    interpolated ``level`` quantile; levels outside the forecast's range clamp to its ends.
    """
    lv = np.asarray(levels, dtype=float)
    weights = np.zeros(len(lv))
    if level <= lv[0]:
        weights[0] = 1.0
    elif level >= lv[-1]:
        weights[-1] = 1.0
    else:
        hi = int(np.searchsorted(lv, level))
        lo = hi - 1
        frac = (level - lv[lo]) / (lv[hi] - lv[lo])
        weights[lo], weights[hi] = 1.0 - frac, frac
    return weights


def demand_over(daily: np.ndarray, days: float) -> float:
    """Total of a daily demand path over ``days`` (fractional days count pro rata).

    Beyond the forecast horizon the path continues at its mean daily level.
    """
    if days <= 0 or daily.size == 0:
        return 0.0
    return float(demand_over_many(np.asarray(daily, dtype=float)[None, :], np.array([days]))[0])


def demand_over_many(daily: np.ndarray, days: np.ndarray) -> np.ndarray:
    """:func:`demand_over` of many paths at once: ``daily`` ``(N, H)``, ``days`` ``(N,)``."""
    n, horizon = daily.shape
    days = np.clip(np.asarray(days, dtype=float), 0.0, None)
    if horizon == 0:
        return np.zeros(n)
    whole = np.floor(days).astype(np.int64)
    frac = days - whole
    mean = daily.mean(axis=1)
    cumulative = np.concatenate([np.zeros((n, 1)), np.cumsum(daily, axis=1)], axis=1)
    rows = np.arange(n)
    total = cumulative[rows, np.minimum(whole, horizon)]
    total += np.maximum(whole - horizon, 0) * mean
    partial = np.where(whole < horizon, daily[rows, np.minimum(whole, horizon - 1)], mean)
    return np.asarray(total + frac * partial)


def days_until(daily: np.ndarray, stock: float) -> float:
    """Days until cumulative expected demand exceeds ``stock`` (fractional; capped)."""
    if stock <= 0:
        return 0.0
    mean = float(daily.mean()) if daily.size else 0.0
    cumulative = np.cumsum(daily)
    crossed = np.nonzero(cumulative > stock)[0]
    if crossed.size:
        d = int(crossed[0])
        before = float(cumulative[d - 1]) if d > 0 else 0.0
        return d + (stock - before) / float(daily[d])
    if mean <= 0:
        return MAX_COVER_DAYS
    remaining = stock - float(cumulative[-1])
    return min(MAX_COVER_DAYS, daily.size + remaining / mean)


@dataclass(frozen=True)
class RestockAssessment:
    """What the stock position looks like against the forecast."""

    demand_over_lead_time: float
    position: int
    needs_restock: bool
    recommended_order_qty: int
    days_of_cover: float
    expected_stockout_date: date | None


def assess_restock(
    values: np.ndarray,
    levels: list[float],
    *,
    on_hand: int,
    on_order: int,
    lead_time_days: float,
    review_period_days: float,
    service_level: float,
    first_day: date,
) -> RestockAssessment:
    """Compare stock on hand plus on order with demand over lead time plus review period.

    Demand over the protection interval is the sum of the daily ``service_level`` quantiles:
    a conservative (upper) figure for the quantile of the total, since daily quantiles add
    up exactly only when days move together. Days of cover follow the expected demand,
    estimated as the mean of the forecast quantiles (for evenly spaced levels, a quadrature
    of the mean); the median of intermittent demand is often 0 and would never run out.

    ``values`` has shape ``(horizon, num_quantiles)``; ``first_day`` is the date of step 0.
    """
    values = np.asarray(values, dtype=float)
    protection = lead_time_days + review_period_days
    high = values @ quantile_column(levels, service_level)
    expected = values.mean(axis=1)
    demand = demand_over(high, protection)
    position = on_hand + on_order
    cover = days_until(expected, float(on_hand))
    stockout = None if cover >= MAX_COVER_DAYS else first_day + timedelta(days=math.floor(cover))
    shortfall = demand - position
    return RestockAssessment(
        demand_over_lead_time=round(demand, 3),
        position=position,
        needs_restock=shortfall > 0,
        recommended_order_qty=max(0, math.ceil(shortfall - 1e-9)),
        days_of_cover=round(cover, 2),
        expected_stockout_date=stockout,
    )


@dataclass(frozen=True)
class OpenRestock:
    """The alert last published for a SKU (kept by the worker between windows)."""

    recommended_order_qty: int
    expected_stockout_date: date | None


def restock_transition(
    previous: OpenRestock | None, now: RestockAssessment, *, change_ratio: float = 0.5
) -> str | None:
    """``"open"`` to publish an alert, ``"resolved"`` to publish its resolution, else None.

    An open alert is published again only when the recommended quantity moves by more
    than ``change_ratio`` (default: half) of the quantity last published; a stock-out date
    that drifts as days pass is not news by itself.
    """
    if not now.needs_restock:
        return "resolved" if previous is not None else None
    if previous is None:
        return "open"
    old = max(previous.recommended_order_qty, 1)
    if abs(now.recommended_order_qty - previous.recommended_order_qty) / old > change_ratio:
        return "open"
    return None


@dataclass(frozen=True)
class Deviation:
    """Observed demand of one window against the forecast interval for it."""

    observed: float
    lower: float
    median: float
    upper: float

    @property
    def side(self) -> int:
        """+1 above the interval, -1 below it, 0 inside."""
        if self.observed > self.upper:
            return 1
        if self.observed < self.lower:
            return -1
        return 0


def persistent_deviation(history: list[Deviation], windows: int) -> str | None:
    """``"surge"`` or ``"slump"`` when the last ``windows`` observations all fall on the same
    side outside their forecast interval, else None."""
    if windows < 1 or len(history) < windows:
        return None
    sides = {d.side for d in history[-windows:]}
    if sides == {1}:
        return "surge"
    if sides == {-1}:
        return "slump"
    return None


def lift_off_plan(
    observed: float, baseline: float, expected_lift: float, *, tolerance: float = 0.5
) -> float | None:
    """The realised lift of a promotion when it is far from plan, else None.

    Lift is observed / baseline demand - 1 (baseline: the forecast without the promotion).
    It is "far" when ``|realised - expected| > tolerance * max(|expected|, 0.1)``.
    """
    if baseline <= 0:
        return None
    realised = observed / baseline - 1.0
    if abs(realised - expected_lift) > tolerance * max(abs(expected_lift), 0.1):
        return realised
    return None


def alert_id(kind: str, sku: str, window: Window) -> str:
    """Deterministic id of an alert: the same evidence gives the same id on a replay."""
    return f"{kind}:{sku}:{int(window.end.timestamp())}"
