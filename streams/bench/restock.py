"""``demandcast bench restock``: the decision backtest of the restock and pricing rules.

The demo's period of the UCI log (from 2011-09-01 to the log's end, the top 500 SKUs of the
training table) is replayed day by day without Kafka: each day every SKU is forecast from
its daily history before that day (the registered model the demo trains, run as the forecast
worker runs it: :meth:`streams.serving.model_holder.ServingModel.predict` on the context
window), and a SIMULATED stock (:func:`streams.history.simulate.simulate_replenishment`)
sells down with the log's real demand and is replenished by each policy's restock
recommendations themselves:

- ``model``: the order-up-to level is the service-level quantile of demand over lead time
  plus review period from the model's interval distribution (days joined with the
  version's ``interval_rho``); days of cover from the median of cumulative demand;
- ``seasonal_naive``: the history baseline: empirical quantiles of the SKU's past
  lead-time-plus-review totals (the last 56 days), cover from the median of past totals
  (at 1, 2, 4, 7, 14 and 28 days, linear between);
- ``sum_of_daily_quantiles``: the old rule on the model's quantiles.

The daily forecasts are cached (``--cache``), so a second run only simulates.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from streams.alerts.rules import (
    RestockArrays,
    assess_restock_many,
    days_until_cumulative,
    order_intervals,
    restock_arrays,
)
from streams.history.simulate import ReplenishmentRules, simulate_replenishment
from streams.settings import Settings

KS = (7, 14, 28)
LEVELS_OUT = (0.5, 0.8, 0.9, 0.95)
EMPIRICAL_LOOKBACK = 56
MIN_HISTORY_DAYS_FOR_PRICING = 14
EMPIRICAL_DRAWS = 128
"""Draws of the history baseline's lead-time totals and undershoot (its reorder point)."""
SWEEP_LEVELS = (0.95, 0.98)
"""Service-level settings of the extra seasonal_naive runs (its stock at the model's
achieved service level is interpolated between runs)."""


@dataclass(frozen=True)
class RestockBenchOptions:
    log: Path
    split: datetime = datetime(2011, 9, 1, tzinfo=UTC)
    lead_time_days: int = 7
    review_days: int | None = None
    """Review period in days (default: the ``restock_review_days`` setting); with an order
    cost, the shortest."""
    order_cost: float | None = None
    """Order cost in unit-days (default: the ``restock_order_cost_unit_days`` setting): each
    SKU's review period is its economic order interval (every policy alike)."""
    cover_days: float = 14.0
    """Opening stock in days of mean demand of the 8 weeks before the split (the demo's)."""
    cache: Path | None = None
    sweep: bool = True
    """Also run the history baseline at the :data:`SWEEP_LEVELS` settings (for the target
    'less stock than seasonal naive at the same service level'); the demo's table skips it."""


@dataclass
class Replay:
    """What the policies see: real daily demand and the model's daily forecasts."""

    skus: list[str]
    demand: np.ndarray
    """``(N, D)`` units per replayed day."""
    history: np.ndarray
    """``(N, T0 + D)`` units from the log's first day (0 before a SKU's first sale)."""
    start: int
    """Index of the first replayed day in ``history``."""
    quantiles: np.ndarray
    """``(D, N, H, L)`` the model's forecast at the start of each replayed day."""
    levels: list[float]
    rho: float
    version: str
    first_day: str
    timings: dict[str, float] = field(default_factory=dict)

    @cached_property
    def observed(self) -> np.ndarray:
        """``(N, T0 + D)``: each SKU observed from its first sale (a prefix of it is the
        same at every replayed day, so it is computed once)."""
        return np.cumsum(self.history > 0, axis=1) > 0


def daily_history(log: Path, skus: list[str]) -> tuple[np.ndarray, Any]:
    """``(N, T)`` daily units of ``skus`` over the whole log (zeros before first sale) and
    the day index."""
    from models.data import panel_from_frame, read_uci_log, uci_to_long

    lines = read_uci_log(log)
    lines = lines[lines["StockCode"].isin(set(skus))]
    panel = panel_from_frame(uci_to_long(lines, "D", None, from_log_start=True), "D")
    row = {s: i for i, s in enumerate(panel.series_ids)}
    units = np.zeros((len(skus), panel.length))
    for i, sku in enumerate(skus):
        if sku in row:
            units[i] = np.clip(panel.target[row[sku]], 0.0, None)
    return units, panel.index


def daily_forecasts(
    model: Any, history: np.ndarray, index: Any, start: int, stop: int | None = None
) -> np.ndarray:
    """The model's forecast at the start of every day from ``start`` on (to ``stop``), from
    the context window before it, as the forecast worker builds it (``observed`` from the
    first sale)."""
    from models.data import Panel

    if model.known:
        raise ValueError(f"bench restock serves models without known covariates, not {model.known}")
    c = model.context_length
    out = []
    for t in range(start, history.shape[1] if stop is None else stop):
        lo = max(0, t - c)
        units = history[:, lo:t]
        if units.shape[1] < c:
            units = np.concatenate([np.zeros((units.shape[0], c - units.shape[1])), units], 1)
        seen = np.cumsum(units > 0, axis=1) > 0
        panel = Panel(
            series_ids=[str(i) for i in range(units.shape[0])],
            index=index[t - c : t] if t >= c else index[:c],
            freq="D",
            target=units,
            observed=seen | ~seen.any(axis=1, keepdims=True),
        )
        out.append(np.asarray(model.predict(panel, None), dtype=np.float32))
    return np.stack(out)


def load_replay(opts: RestockBenchOptions, model: Any, skus: list[str]) -> Replay:
    """The replay's demand of ``skus`` and the serving ``model``'s daily forecasts (from
    ``opts.cache`` when it holds them for the same model version and SKUs)."""
    t1 = time.perf_counter()
    history, index = daily_history(opts.log, skus)
    start = int(np.searchsorted(index, np.datetime64(opts.split.replace(tzinfo=None))))
    key = f"{model.version}:{len(skus)}:{history.shape[1]}:{start}:{float(history.sum())}"
    quantiles = None
    if opts.cache is not None and opts.cache.exists():
        cached = np.load(opts.cache, allow_pickle=False)
        if str(cached["key"]) == key:
            quantiles = cached["quantiles"]
    t2 = time.perf_counter()
    if quantiles is None:
        quantiles = daily_forecasts(model, history, index, start)
        if opts.cache is not None:
            opts.cache.parent.mkdir(parents=True, exist_ok=True)
            with opts.cache.open("wb") as fh:
                np.savez(fh, key=np.array(key), quantiles=quantiles)
    t3 = time.perf_counter()
    return Replay(
        skus=skus,
        demand=history[:, start:],
        history=history,
        start=start,
        quantiles=quantiles,
        levels=list(model.quantile_levels),
        rho=float(model.interval_rho),
        version=model.version,
        first_day=str(index[start].date()),
        timings={"log_s": t2 - t1, "forecasts_s": t3 - t2},
    )


# --- policies -------------------------------------------------------------------------------


def model_policy(
    replay: Replay,
    lead: int,
    review: int,
    service_level: float,
    policy: str,
    order_cost: float = 0.0,
) -> Callable[[int, np.ndarray, np.ndarray], RestockArrays]:
    """``decide`` of the restock rules on the model's forecasts (``model`` or the old
    ``sum_of_daily_quantiles``); with ``order_cost`` (unit-days) each SKU's review period is
    its economic order interval at its recent mean daily units (:func:`recent_rate`, as for
    the history baseline), ``review`` the shortest."""
    n = len(replay.skus)

    def decide(t: int, on_hand: np.ndarray, on_order: np.ndarray) -> RestockArrays:
        rate = recent_rate(*_history_before(replay, t)) if order_cost > 0 else None
        return assess_restock_many(
            replay.quantiles[t].astype(np.float64),
            replay.levels,
            on_hand=on_hand,
            on_order=on_order,
            lead_time_days=np.full(n, float(lead)),
            review_period_days=float(review),
            service_level=service_level,
            rho=replay.rho,
            policy="model" if policy == "model" else "sum_of_daily_quantiles",
            order_cost_unit_days=order_cost,
            demand_rate=rate,
        )

    return decide


def empirical_policy(
    replay: Replay, lead: int, review: int, service_level: float, order_cost: float = 0.0
) -> Callable[[int, np.ndarray, np.ndarray], RestockArrays]:
    """``decide`` of the history baseline, the same rule as the model's on the SKU's own
    past (the last :data:`EMPIRICAL_LOOKBACK` days): the reorder point is the
    ``service_level`` quantile of a past ``lead + 1``-day total plus the undershoot (drawn
    from the past days' demand as the model's is from its daily forecast), the order-up-to
    level that quantile of past ``lead + review``-day totals, the days of cover follow the
    empirical median of past totals. With ``order_cost``, each SKU's review period is its
    economic order interval at :func:`recent_rate` (rounded to days)."""
    from models.intervals import empirical_interval_quantiles, undershoot_draws

    horizon = replay.quantiles.shape[2]
    trigger = lead + 1
    days = np.arange(1, horizon + 1)
    grid = tuple((np.arange(EMPIRICAL_DRAWS) + 0.5) / EMPIRICAL_DRAWS)
    shuffle = np.random.default_rng(1).permutation(EMPIRICAL_DRAWS)  # totals vs undershoot

    def decide(t: int, on_hand: np.ndarray, on_order: np.ndarray) -> RestockArrays:
        hist, seen = _history_before(replay, t)
        rate = recent_rate(hist, seen)
        periods = np.rint(order_intervals(rate, float(review), order_cost)).astype(np.int64)
        protection = lead + periods
        # the median curve of past totals at a few lengths, linear between them (cover only)
        knots = sorted({1, 2, 4, 7, 14, horizon, trigger, *protection.tolist()})
        totals = empirical_interval_quantiles(
            hist, knots, (0.5, service_level), EMPIRICAL_LOOKBACK, seen
        )
        draws = empirical_interval_quantiles(hist, [1, trigger], grid, EMPIRICAL_LOOKBACK, seen)
        under = undershoot_draws(
            draws[:, :1], grid, np.ones(len(on_hand)), num_samples=EMPIRICAL_DRAWS
        )
        lead_total = draws[:, 1, shuffle]
        reorder_point = np.quantile(lead_total + under, service_level, axis=1)
        column = np.searchsorted(np.asarray(knots), protection)
        order_up_to = np.maximum(totals[np.arange(len(on_hand)), column, 1], reorder_point)
        at = [knots.index(k) for k in knots if k <= horizon]
        x = np.array([0, *(knots[i] for i in at)], dtype=float)
        median = np.concatenate([np.zeros((len(on_hand), 1)), totals[:, at, 0]], axis=1)
        curve = np.stack([np.interp(days, x, row) for row in median])
        cover = days_until_cumulative(curve, on_hand)
        return restock_arrays(
            order_up_to, reorder_point, on_hand + on_order, cover, periods.astype(float)
        )

    return decide


def recent_rate(hist: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Mean daily units over the last :data:`EMPIRICAL_LOOKBACK` observed days: the demand
    rate of every policy's order intervals (the same planning input for all of them)."""
    recent, recent_seen = hist[:, -EMPIRICAL_LOOKBACK:], seen[:, -EMPIRICAL_LOOKBACK:]
    return (recent * recent_seen).sum(axis=1) / np.maximum(recent_seen.sum(axis=1), 1)


def _history_before(replay: Replay, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Units before replayed day ``t`` and where each SKU was observed (from first sale)."""
    stop = replay.start + t
    return replay.history[:, :stop], replay.observed[:, :stop]


# --- calibration and pricing ------------------------------------------------------------------


def calibration(replay: Replay) -> dict[str, Any]:
    """Share of actual k-day totals at or below each quantile, over every replayed origin
    whose k days lie inside the replay: the model's interval totals, the history baseline's
    past totals and the old rule's sums of daily quantiles."""
    from models.intervals import empirical_interval_quantiles, interval_quantiles

    days = replay.demand.shape[1]
    hits: dict[str, np.ndarray] = {}
    counts = np.zeros(len(KS))
    for name in ("model", "seasonal_naive", "sum_of_daily_quantiles"):
        hits[name] = np.zeros((len(KS), len(LEVELS_OUT)))
    for t in range(days):
        valid = [i for i, k in enumerate(KS) if t + k <= days]
        if not valid:
            break
        ks = [KS[i] for i in valid]
        actual = np.stack([replay.demand[:, t : t + k].sum(axis=1) for k in ks], 1)
        q = replay.quantiles[t].astype(np.float64)
        hist, seen = _history_before(replay, t)
        preds = {
            "model": interval_quantiles(q, replay.levels, ks, LEVELS_OUT, replay.rho),
            "sum_of_daily_quantiles": interval_quantiles(q, replay.levels, ks, LEVELS_OUT, 1.0),
            "seasonal_naive": empirical_interval_quantiles(
                hist, ks, LEVELS_OUT, EMPIRICAL_LOOKBACK, seen
            ),
        }
        for name, pred in preds.items():
            hits[name][valid] += (actual[:, :, None] <= pred + 1e-9).sum(axis=0)
        counts[valid] += actual.shape[0]
    out: dict[str, Any] = {}
    for name, h in hits.items():
        out[name] = {
            str(k): {str(lv): float(h[i, j] / counts[i]) for j, lv in enumerate(LEVELS_OUT)}
            for i, k in enumerate(KS)
            if counts[i]
        }
    return out


def pricing_alerts(replay: Replay, windows: int) -> dict[str, float]:
    """Pricing alerts per SKU per month over the replay: the rule on ``windows``-day totals
    (the block's total outside the 80% interval of that total; non-overlapping blocks) and
    the old rule (``windows`` days in a row outside the day's 80% interval, one side)."""
    from models.intervals import interval_quantiles
    from streams.alerts.rules import quantile_column

    n, days = replay.demand.shape
    lo_w, hi_w = (quantile_column(replay.levels, x) for x in (0.1, 0.9))
    first_sale = np.where(
        (replay.history > 0).any(axis=1), (replay.history > 0).argmax(axis=1), 10**9
    )
    run_side = np.zeros(n, dtype=np.int64)
    run_len = np.zeros(n, dtype=np.int64)
    total_alerts = daily_alerts = 0
    for t in range(days):
        seasoned = replay.start + t - first_sale >= MIN_HISTORY_DAYS_FOR_PRICING
        q = replay.quantiles[t].astype(np.float64)
        y = replay.demand[:, t]
        side = np.where(y > q[:, 0] @ hi_w, 1, np.where(y < q[:, 0] @ lo_w, -1, 0))
        same = (side != 0) & (side == run_side)
        run_len = np.where(same, run_len + 1, np.where(side != 0, 1, 0))
        run_side = side
        fired = seasoned & (run_len >= windows)
        daily_alerts += int(fired.sum())
        run_len = np.where(fired, 0, run_len)
        if t % windows == 0 and t + windows <= days:
            k = min(windows, q.shape[1])
            band = interval_quantiles(q, replay.levels, [k], [0.1, 0.9], replay.rho)[:, 0]
            total = replay.demand[:, t : t + windows].sum(axis=1)
            out = (total > band[:, 1] + 1e-9) | (total < band[:, 0] - 1e-9)
            total_alerts += int((out & seasoned).sum())
    months = days / 30.4375
    return {
        "windows": windows,
        "totals_rule_per_sku_month": total_alerts / (n * months),
        "days_in_a_row_rule_per_sku_month": daily_alerts / (n * months),
    }


# --- the benchmark --------------------------------------------------------------------------


def bench_restock(
    settings: Settings, opts: RestockBenchOptions, model: Any, skus: list[str]
) -> dict[str, Any]:
    """Run the decision backtest of the serving ``model`` (a
    :class:`~streams.serving.model_holder.ServingModel`) on ``skus``; return the report."""
    t0 = time.perf_counter()
    replay = load_replay(opts, model, skus)
    lead = opts.lead_time_days
    review = round(settings.restock_review_days) if opts.review_days is None else opts.review_days
    level = settings.restock_service_level
    cost = settings.restock_order_cost_unit_days if opts.order_cost is None else opts.order_cost
    rules = ReplenishmentRules(
        lead_time_days=lead,
        repeat_change=settings.restock_repeat_change,
        repeat_days=settings.restock_repeat_days,
    )
    before = replay.history[:, max(0, replay.start - 56) : replay.start]
    opening = np.ceil(opts.cover_days * before.mean(axis=1))
    deciders = {
        "model": model_policy(replay, lead, review, level, "model", cost),
        "seasonal_naive": empirical_policy(replay, lead, review, level, cost),
        "sum_of_daily_quantiles": model_policy(replay, lead, review, level, "sum", cost),
    }
    policies: dict[str, Any] = {}
    t1 = time.perf_counter()
    for name, decide in deciders.items():
        policies[name] = simulate_replenishment(replay.demand, opening, decide, rules).summary()
    sweep = [
        {
            "service_level_setting": lv,
            **_summary_of(replay, opening, rules, (lead, review, cost), lv),
        }
        for lv in (SWEEP_LEVELS if opts.sweep else ())
    ]
    t2 = time.perf_counter()
    calib = calibration(replay)
    pricing = pricing_alerts(replay, settings.pricing_windows)
    t3 = time.perf_counter()
    return {
        "stock": "SIMULATED: the UCI log has no inventory; opening stock "
        f"{opts.cover_days:g} days of the mean demand of the 8 weeks before the split, "
        "replenished only by each policy's own recommendations; demand is the log's real "
        "daily units, unmet demand is lost",
        "period": {"first_day": replay.first_day, "days": int(replay.demand.shape[1])},
        "skus": len(replay.skus),
        "model_version": replay.version,
        "interval_rho": replay.rho,
        "rules": {
            "lead_time_days": lead,
            "review_days": review,
            "order_cost_unit_days": cost,
            "service_level": level,
            "repeat_change": rules.repeat_change,
            "repeat_days": rules.repeat_days,
            "seasonal_naive_lookback_days": EMPIRICAL_LOOKBACK,
        },
        "calibration": calib["model"],
        "calibration_other": {k: v for k, v in calib.items() if k != "model"},
        "policies": policies,
        "seasonal_naive_by_service_level": sweep,
        "pricing": pricing,
        "targets": targets(calib["model"], policies, sweep),
        "seconds": {
            **{k: round(v, 2) for k, v in replay.timings.items()},
            "simulate_s": round(t2 - t1, 2),
            "calibration_and_pricing_s": round(t3 - t2, 2),
            "total_s": round(t3 - t0, 2),
        },
    }


def _summary_of(
    replay: Replay,
    opening: np.ndarray,
    rules: ReplenishmentRules,
    periods: tuple[int, int, float],
    lv: float,
) -> dict[str, Any]:
    """The history baseline at service-level setting ``lv`` (``periods``: lead time, review
    period, order cost): its service level and stock."""
    lead, review, cost = periods
    decide = empirical_policy(replay, lead, review, lv, cost)
    out = simulate_replenishment(replay.demand, opening, decide, rules).summary()
    return {k: out[k] for k in ("service_level", "avg_on_hand_units", "alerts_per_sku_month")}


def stock_at(sweep: list[dict[str, Any]], service_level: float) -> float | None:
    """The average stock the sweep reaches at ``service_level`` (linear between the two
    runs around it; None outside the swept range)."""
    pts = sorted((r["service_level"], r["avg_on_hand_units"]) for r in sweep)
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if x0 <= service_level <= x1:
            return y0 if x1 == x0 else y0 + (service_level - x0) * (y1 - y0) / (x1 - x0)
    return None


def targets(
    calib: dict[str, Any], policies: dict[str, Any], sweep: list[dict[str, Any]]
) -> dict[str, Any]:
    """Issue 16's targets, each with whether it is met (measured, not tuned)."""
    cov = calib.get("14", {}).get("0.9", float("nan"))
    m, s = (policies[k] for k in ("model", "sum_of_daily_quantiles"))
    same = stock_at([*sweep, policies["seasonal_naive"]], m["service_level"])
    less = 1.0 - m["avg_on_hand_units"] / s["avg_on_hand_units"] if s["avg_on_hand_units"] else 0
    return {
        "coverage_14d_q90_in_0.87_0.93": {"value": cov, "met": bool(0.87 <= cov <= 0.93)},
        "model_service_level_0.9_pm_0.03": {
            "value": m["service_level"],
            "met": bool(abs(m["service_level"] - 0.9) <= 0.03),
        },
        "model_stock_20pct_below_sum_of_daily": {"value": less, "met": bool(less >= 0.2)},
        "model_stock_below_seasonal_naive_at_the_same_service_level": {
            "model_avg_on_hand_units": m["avg_on_hand_units"],
            "seasonal_naive_avg_on_hand_units": same,
            "met": None if same is None else bool(m["avg_on_hand_units"] < same),
            "how": "seasonal_naive run at the service-level settings of "
            "seasonal_naive_by_service_level, its stock interpolated at the model's achieved "
            "cycle service level (null: outside the swept range)",
        },
        "model_alerts_per_sku_month_le_2": {
            "value": m["alerts_per_sku_month"],
            "met": bool(m["alerts_per_sku_month"] <= 2.0),
        },
    }
