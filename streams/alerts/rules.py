"""Restock and pricing alerts: pure decisions over one SKU's forecast, stock and history.

The forecast worker calls these after each window's forecasts and publishes what they
return; the functions themselves do no I/O, so every rule is tested without a broker.

Forecast arrays have shape ``(horizon, num_quantiles)``: ``values[d, j]`` is the
``levels[j]`` quantile of demand on day ``d`` after the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

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


RestockPolicy = Literal["model", "sum_of_daily_quantiles"]
RESTOCK_POLICIES: tuple[str, ...] = ("model", "sum_of_daily_quantiles")
"""``model``: the order-up-to level is the service-level quantile of the *total* demand over
lead time plus review period, the reorder point the same over the lead time
(:mod:`models.intervals`, days joined with the model's ``rho``), days of cover follow the
median of cumulative demand. ``sum_of_daily_quantiles``: the old figures, kept for the
decision benchmark: sums of the daily service-level quantiles, days of cover at the mean of
the forecast quantiles."""

CHECK_PERIOD_DAYS = 1.0
"""Days between two assessments of a SKU (the forecast worker's daily windows): the demand
between two looks is the step by which the stock position passes the reorder point."""


MAX_REVIEW_DAYS = 56.0
"""Longest order interval :func:`order_intervals` gives (two forecast horizons of 28 days:
beyond that the forecast says little about the demand the order must cover)."""


def order_intervals(
    mean_daily: np.ndarray,
    minimum: float | np.ndarray,
    order_cost_unit_days: float,
    maximum: float = MAX_REVIEW_DAYS,
) -> np.ndarray:
    """Each SKU's review period (days between its orders): the economic order interval
    ``sqrt(2 K / (h d))`` of a SKU selling ``d`` units a day, where ``K / h`` — the cost of
    placing an order in units of the cost of holding one unit for a day — is
    ``order_cost_unit_days``; never below ``minimum`` nor above ``maximum``.

    The interval that minimises ordering plus holding cost (Harris' EOQ, as an interval):
    a slow seller orders rarely, its cycle stock costs little; a fast seller orders often,
    since each day of cycle stock costs many units. ``order_cost_unit_days`` 0: ``minimum``
    for every SKU (a fixed review period). A SKU with no expected demand gets ``maximum``.
    """
    rate = np.clip(np.asarray(mean_daily, dtype=float), 0.0, None)
    low = np.broadcast_to(np.asarray(minimum, dtype=float), rate.shape)
    if order_cost_unit_days <= 0:
        return np.array(low, dtype=float)
    with np.errstate(divide="ignore"):
        eoq = np.where(rate > 0, np.sqrt(2.0 * order_cost_unit_days / rate), np.inf)
    return np.clip(eoq, low, np.maximum(low, maximum))


COVER_CHUNK = 256
"""SKUs per block of the cumulative-median draws (``(chunk, horizon, 512)`` floats)."""


@dataclass(frozen=True)
class RestockAssessment:
    """What the stock position looks like against the forecast."""

    demand_over_lead_time: float
    """The order-up-to level: the service-level quantile of demand over lead time plus
    review period (policy ``model``), or the sum of the daily quantiles (the old rule); a
    restock is needed below the same quantile over the lead time alone (the reorder
    point)."""
    position: int
    needs_restock: bool
    recommended_order_qty: int
    days_of_cover: float
    expected_stockout_date: date | None
    review_period_days: float | None = None
    """The review period the order-up-to level covers (None: the caller's setting)."""


@dataclass(frozen=True)
class RestockArrays:
    """:class:`RestockAssessment` of many SKUs at once (arrays of shape ``(N,)``)."""

    order_up_to: np.ndarray
    position: np.ndarray
    needs_restock: np.ndarray
    recommended_order_qty: np.ndarray
    days_of_cover: np.ndarray
    reorder_point: np.ndarray | None = None
    """Below it (stock on hand plus on order) a restock is needed."""
    review_period: np.ndarray | None = None
    """Each SKU's review period in days (:func:`order_intervals`)."""

    def stockout_offset(self) -> np.ndarray:
        """Days from the first day to the expected stock-out (-1: none expected)."""
        cover = self.days_of_cover
        return np.where(cover >= MAX_COVER_DAYS, -1, np.floor(cover)).astype(np.int64)

    def one(self, i: int, first_day: date) -> RestockAssessment:
        offset = int(self.stockout_offset()[i])
        return RestockAssessment(
            demand_over_lead_time=round(float(self.order_up_to[i]), 3),
            position=int(self.position[i]),
            needs_restock=bool(self.needs_restock[i]),
            recommended_order_qty=int(self.recommended_order_qty[i]),
            days_of_cover=round(float(self.days_of_cover[i]), 2),
            expected_stockout_date=None if offset < 0 else first_day + timedelta(days=offset),
            review_period_days=None
            if self.review_period is None
            else round(float(self.review_period[i]), 2),
        )


def days_until_cumulative(cumulative: np.ndarray, stock: np.ndarray) -> np.ndarray:
    """Days until a non-decreasing cumulative demand curve ``(N, H)`` (``cumulative[:, d]``:
    demand over the first ``d + 1`` days) exceeds ``stock`` ``(N,)``: fractional, linear
    within a day, beyond the horizon at the curve's mean daily rate, capped at
    :data:`MAX_COVER_DAYS` (also when the curve never rises)."""
    cum = np.asarray(cumulative, dtype=float)
    n, horizon = cum.shape
    stock = np.asarray(stock, dtype=float)
    padded = np.concatenate([np.zeros((n, 1)), cum], axis=1)
    crossed = padded[:, 1:] > stock[:, None]
    has = crossed.any(axis=1)
    d = np.where(has, crossed.argmax(axis=1), 0)
    rows = np.arange(n)
    before, after = padded[rows, d], padded[rows, d + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = d + (stock - before) / np.where(after > before, after - before, 1.0)
        rate = cum[:, -1] / horizon if horizon else np.zeros(n)
        beyond = horizon + (stock - (cum[:, -1] if horizon else 0.0)) / np.where(
            rate > 0, rate, 1.0
        )
    out = np.where(has, inside, np.where(rate > 0, beyond, MAX_COVER_DAYS))
    out = np.minimum(out, MAX_COVER_DAYS)
    return np.asarray(np.where(stock <= 0, 0.0, out))


def cumulative_quantile(
    values: np.ndarray, levels: list[float], level: float, rho: float
) -> np.ndarray:
    """The ``level`` quantile of demand over the first ``k`` days, for every ``k`` of the
    horizon: ``(N, H, L)`` → ``(N, H)`` (the interval distribution of :mod:`models.intervals`
    with dependence ``rho``), in blocks of :data:`COVER_CHUNK` SKUs."""
    from models.intervals import interval_quantiles

    values = np.asarray(values, dtype=float)
    n, horizon, _ = values.shape
    out = np.zeros((n, horizon))
    ks = list(range(1, horizon + 1))
    for start in range(0, n, COVER_CHUNK):
        block = values[start : start + COVER_CHUNK]
        out[start : start + COVER_CHUNK] = interval_quantiles(block, levels, ks, [level], rho)[
            ..., 0
        ]
    return out


def assess_restock_many(
    values: np.ndarray,
    levels: list[float],
    *,
    on_hand: np.ndarray,
    on_order: np.ndarray,
    lead_time_days: np.ndarray,
    review_period_days: float | np.ndarray,
    service_level: float,
    rho: float,
    policy: RestockPolicy = "model",
    check_period_days: float = CHECK_PERIOD_DAYS,
    order_cost_unit_days: float = 0.0,
    demand_rate: np.ndarray | None = None,
) -> RestockArrays:
    """The restock decision of ``N`` SKUs: ``values`` ``(N, H, L)`` daily quantiles; stock
    on hand, on order and lead time ``(N,)``; the review period — with
    ``order_cost_unit_days`` above 0, the shortest one: each SKU's is its economic order
    interval (:func:`order_intervals`) at ``demand_rate`` (units a day, ``(N,)``: the
    forecast worker gives each SKU's mean over its context), by default the mean of its
    daily forecast quantiles (below the mean for skewed demand: the levels leave out the
    tails).

    Policy ``model``, from the interval distribution (:func:`models.intervals.
    demand_quantile_over`, days joined with ``rho``): the reorder point ``s`` is the
    ``service_level`` quantile of demand over the lead time plus ``check_period_days``
    (an order not placed now is placed at the next look at the earliest) plus the
    undershoot (:func:`models.intervals.undershoot_draws`: at the look that orders, the
    position is already below ``s``, by a day's demand or more for lumpy sellers, and
    ``s`` must cover that too for the order's cycle to meet the service level). The
    order-up-to level ``S`` is the same quantile over the lead time plus the review
    period (at least ``s``). A restock is needed when stock on hand plus on order is below
    ``s``; the recommended quantity brings the position up to ``S`` (``ceil(S -
    position)``), so the next order is due about a review period later.
    Days of cover: when the median of cumulative demand passes stock on hand (the
    median of the *total*, which rises even when each day's median is 0).

    Policy ``sum_of_daily_quantiles`` (the old figures, for the decision benchmark): ``s``
    and ``S`` are sums of the daily ``service_level`` quantiles, cover at the mean of the
    forecast quantiles (the old rule compared the position with ``S`` itself, so it fired
    as soon as a day's demand took the position under it).
    """
    from models.intervals import demand_quantile_over, undershoot_draws

    values = np.asarray(values, dtype=float)
    on_hand = np.asarray(on_hand, dtype=float)
    position = on_hand + np.asarray(on_order, dtype=float)
    lead = np.asarray(lead_time_days, dtype=float) * np.ones(len(on_hand))
    if demand_rate is None:
        demand_rate = values.mean(axis=(1, 2)) if values.size else np.zeros(len(on_hand))
    review = order_intervals(demand_rate, review_period_days, order_cost_unit_days)
    if policy == "model":
        trigger = lead + check_period_days
        reorder_point = demand_quantile_over(
            values,
            levels,
            trigger,
            service_level,
            rho,
            plus=undershoot_draws(values, levels, trigger),
        )
        order_up_to = np.maximum(
            demand_quantile_over(values, levels, lead + review, service_level, rho),
            reorder_point,
        )
        cumulative = cumulative_quantile(values, levels, 0.5, rho)
    elif policy == "sum_of_daily_quantiles":
        protection, trigger = lead + review, lead + check_period_days
        high = values @ quantile_column(levels, service_level)
        order_up_to = demand_over_many(high, protection)
        reorder_point = demand_over_many(high, trigger)
        cumulative = np.cumsum(values.mean(axis=2), axis=1)
    else:
        raise ValueError(f"restock policy must be one of {RESTOCK_POLICIES}, got {policy!r}")
    return restock_arrays(
        order_up_to, reorder_point, position, days_until_cumulative(cumulative, on_hand), review
    )


def restock_arrays(
    order_up_to: np.ndarray,
    reorder_point: np.ndarray,
    position: np.ndarray,
    cover: np.ndarray,
    review_period: np.ndarray | None = None,
) -> RestockArrays:
    """The decision from the two levels: restock below the reorder point, up to ``S``."""
    shortfall = order_up_to - position
    return RestockArrays(
        order_up_to=order_up_to,
        position=position.astype(np.int64),
        needs_restock=(position < reorder_point) & (shortfall > 0),
        recommended_order_qty=np.maximum(0, np.ceil(shortfall - 1e-9)).astype(np.int64),
        days_of_cover=np.minimum(cover, MAX_COVER_DAYS),
        reorder_point=reorder_point,
        review_period=review_period,
    )


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
    rho: float | None = None,
    policy: RestockPolicy = "model",
    order_cost_unit_days: float = 0.0,
) -> RestockAssessment:
    """Compare stock on hand plus on order with demand over lead time plus review period.

    One SKU of :func:`assess_restock_many`: ``values`` has shape ``(horizon,
    num_quantiles)``; ``first_day`` is the date of step 0, the expected stock-out date is
    ``first_day + floor(days of cover)``. ``rho`` defaults to
    :data:`models.intervals.DEFAULT_DEPENDENCE`.
    """
    from models.intervals import DEFAULT_DEPENDENCE

    many = assess_restock_many(
        np.asarray(values, dtype=float)[None],
        levels,
        on_hand=np.array([on_hand]),
        on_order=np.array([on_order]),
        lead_time_days=np.array([lead_time_days]),
        review_period_days=review_period_days,
        service_level=service_level,
        rho=DEFAULT_DEPENDENCE.rho if rho is None else rho,
        policy=policy,
        order_cost_unit_days=order_cost_unit_days,
    )
    return many.one(0, first_day)


@dataclass(frozen=True)
class OpenRestock:
    """The alert last published for a SKU (kept by the worker between windows)."""

    recommended_order_qty: int
    expected_stockout_date: date | None


def material_change(
    old_qty: np.ndarray | int,
    old_stockout: np.ndarray | int,
    qty: np.ndarray | int,
    stockout: np.ndarray | int,
    *,
    change_ratio: float,
    stockout_days: int,
) -> np.ndarray:
    """Whether a recommendation changed enough to publish its alert again: the quantity by
    at least ``change_ratio`` of the old one, or the stock-out day (an ordinal; -1: none
    expected) by at least ``stockout_days`` (or appearing / disappearing)."""
    old_q = np.asarray(old_qty, dtype=float)
    moved = np.abs(np.asarray(qty, dtype=float) - old_q) >= change_ratio * np.maximum(old_q, 1.0)
    a, b = np.asarray(old_stockout), np.asarray(stockout)
    shifted = np.where((a < 0) | (b < 0), (a < 0) != (b < 0), np.abs(a - b) >= stockout_days)
    return np.asarray(moved | shifted)


def restock_transition(
    previous: OpenRestock | None,
    now: RestockAssessment,
    *,
    change_ratio: float = 0.25,
    stockout_days: int = 3,
) -> str | None:
    """``"open"`` to publish an alert, ``"resolved"`` to publish its resolution, else None.

    An open alert is published again only when the recommendation changed materially
    (:func:`material_change`: the quantity by at least ``change_ratio`` of the quantity last
    published, or the expected stock-out date by at least ``stockout_days`` days); a few
    units or a day of drift as days pass is not news.
    """
    if not now.needs_restock:
        return "resolved" if previous is not None else None
    if previous is None:
        return "open"

    def day(d: date | None) -> int:
        return -1 if d is None else d.toordinal()

    changed = material_change(
        previous.recommended_order_qty,
        day(previous.expected_stockout_date),
        now.recommended_order_qty,
        day(now.expected_stockout_date),
        change_ratio=change_ratio,
        stockout_days=stockout_days,
    )
    return "open" if bool(changed) else None


@dataclass(frozen=True)
class Deviation:
    """Observed demand against a forecast interval: one day's (:func:`persistent_deviation`)
    or, for :func:`total_deviation`, one day's demand with the interval of the total that
    starts that day."""

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


def total_deviation(history: list[Deviation], windows: int) -> str | None:
    """``"surge"`` or ``"slump"`` when the total demand of the last ``windows`` days falls
    above or below the 80% interval of that total, else None.

    Each entry's ``observed`` is one day's demand; its ``lower``, ``median`` and ``upper``
    are the interval of the ``windows``-day total *starting* that day, as the first forecast
    of the day gave it; the block's first entry holds the interval the total is judged by.
    The caller starts a new block after every judgement (non-overlapping blocks).
    """
    if windows < 1 or len(history) < windows:
        return None
    block = history[-windows:]
    total = sum(d.observed for d in block)
    side = Deviation(total, block[0].lower, block[0].median, block[0].upper).side
    return "surge" if side > 0 else "slump" if side < 0 else None


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
