"""Rolling-origin backtest: for each of the last ``W`` windows of ``H`` periods, fit every
forecaster on what precedes the origin and score its quantiles on the window.

Scoring is :class:`models.evaluation.Scorer`'s, over every (series, window): MASE is the
mean of the per-(series, window) MASE values (scaled by the history before the window's
origin); WQL, WAPE and bias pool every (series, window, step) in numerator and
denominator; coverage is the share of all actuals inside the 0.1–0.9 interval, and per
quantile level the share at or below that quantile (``quantile_coverage``). Only series
observed before an origin are scored in that window.

The skill reference (``reference``, default ``"seasonal_naive"``) is the *point* seasonal
naive — every quantile equal to the value one season back — as issue 4 and most published
WQL tables measure it (its WQL equals its WAPE); the residual-band variant is reported as
``seasonal_naive_band``.

Every method also gets ``intervals``: the calibration of its 7/14/28-day totals
(:func:`interval_calibration`, issue 16).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.baselines import Forecaster
from models.data import Panel
from models.evaluation import Scorer, score
from models.exceptions import InputError

INTERVAL_KS = (7, 14, 28)
"""Interval lengths (days) whose totals the backtest calibrates (those up to the horizon)."""
INTERVAL_LEVELS = (0.5, 0.8, 0.9, 0.95)


@dataclass
class WindowForecast:
    """One method's forecast for one window: actuals ``(N, H)`` and quantiles ``(N, H, Q)``."""

    origin: int
    series: np.ndarray
    actual: np.ndarray
    quantiles: np.ndarray


@dataclass
class BacktestResult:
    """Metrics per method plus the raw forecasts (for plots)."""

    metrics: dict[str, dict[str, Any]]
    forecasts: dict[str, list[WindowForecast]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def origins_for(length: int, horizon: int, windows: int) -> list[int]:
    """Origins ``T - k·H`` for ``k = W..1`` (each window is the ``H`` periods after it)."""
    if horizon < 1 or windows < 1:
        raise InputError(f"horizon and windows must be >= 1, got {horizon}, {windows}")
    origins = [length - k * horizon for k in range(windows, 0, -1)]
    if origins[0] < 2:
        raise InputError(
            f"a table of {length} periods is too short for {windows} windows of {horizon}; "
            f"use fewer windows or a shorter horizon"
        )
    return origins


def run_backtest(
    panel: Panel,
    forecasters: Sequence[Forecaster],
    horizon: int,
    windows: int,
    season: int,
    reference: str = "seasonal_naive",
    on_progress: Callable[[str], None] | None = None,
    interval_ks: Sequence[int] = INTERVAL_KS,
) -> BacktestResult:
    """Rolling-origin backtest of every forecaster; ``reference`` is the skill baseline.

    Returns a :class:`BacktestResult` whose ``metrics[name]`` has ``mase, wql, wape, bias,
    coverage80``, ``quantile_coverage`` (per level, as a string, the share of actuals at or
    below that quantile), ``skill = {"mase": 1 - mase/mase_ref, "wql": 1 - wql/wql_ref}`` and
    ``intervals`` (:func:`interval_calibration`: the calibration of the ``interval_ks``-day
    totals; ``None`` when no interval length fits the horizon).
    """
    if panel.num_series == 0:
        raise InputError("the table has no series")
    names = [f.name for f in forecasters]
    if len(set(names)) != len(names):
        raise InputError(f"forecaster names must be unique, got {names}")
    origins = origins_for(panel.length, horizon, windows)
    levels = list(forecasters[0].quantile_levels)
    scorers = {n: Scorer(levels, season) for n in names}
    forecasts: dict[str, list[WindowForecast]] = {n: [] for n in names}
    seconds = dict.fromkeys(names, 0.0)
    for origin in origins:
        history = panel.slice(0, origin)
        alive = np.flatnonzero(history.observed.any(axis=1))
        if alive.size == 0:
            continue
        hist = _subset(history, alive)
        actual = panel.target[alive, origin : origin + horizon].astype(np.float64)
        actual = np.where(panel.observed[alive, origin : origin + horizon], actual, np.nan)
        future = {k: v[alive] for k, v in panel.future_known(origin, horizon).items()}
        for f in forecasters:
            if list(f.quantile_levels) != levels:
                raise InputError(f"{f.name} has other quantile levels than {names[0]}")
            if on_progress:
                on_progress(f"{f.name} @ {panel.index[origin].date()}")
            t0 = time.perf_counter()
            f.fit(hist)
            q = np.asarray(f.predict(hist, horizon, future), dtype=np.float64)
            seconds[f.name] += time.perf_counter() - t0
            scorers[f.name].add(actual, q, hist.target, hist.observed)
            forecasts[f.name].append(WindowForecast(origin, alive, actual, q))
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        evaluation = scorers[n].evaluation()
        out[n] = dict(evaluation.summary())
        out[n]["quantile_coverage"] = {
            str(level): share for level, share in evaluation.quantile_coverage.items()
        }
    ref = out.get(reference)
    for n in names:
        if ref is None:
            out[n]["skill"] = {"mase": None, "wql": None}
            continue
        out[n]["skill"] = {
            "mase": 1.0 - out[n]["mase"] / ref["mase"] if ref["mase"] else None,
            "wql": 1.0 - out[n]["wql"] / ref["wql"] if ref["wql"] else None,
        }
    for n in names:
        out[n]["intervals"] = interval_calibration(forecasts[n], levels, interval_ks)
    return BacktestResult(out, forecasts, seconds)


def interval_calibration(
    windows: Sequence[WindowForecast], levels: Sequence[float], ks: Sequence[int] = INTERVAL_KS
) -> dict[str, Any] | None:
    """Calibration of one method's ``k``-day totals (``k`` up to the horizon) over its
    backtest windows (:func:`models.intervals.backtest_interval_metrics`): the totals are
    built from the daily quantiles with a ``rho`` fitted on the earlier half of the windows
    and scored on the later ones; for each ``k``, the share of actual totals at or below each
    quantile (0.5, 0.8, 0.9, 0.95) and the wQL (pinball loss) of the totals, and the same
    for the sum of the daily quantiles (``sum_of_daily``). A point forecast (no spread) gives
    the sum of its points at every level."""
    from models.intervals import backtest_interval_metrics

    if not windows:
        return None
    horizon = min(w.quantiles.shape[1] for w in windows)
    kk = [k for k in ks if k <= horizon]
    if not kk:
        return None
    try:
        return backtest_interval_metrics(
            [w.quantiles for w in windows], [w.actual for w in windows], levels, kk, INTERVAL_LEVELS
        )
    except InputError:  # e.g. no positive realised total to fit rho on
        return None


def _subset(panel: Panel, rows: np.ndarray) -> Panel:
    return Panel(
        [panel.series_ids[i] for i in rows],
        panel.index,
        panel.freq,
        panel.target[rows],
        panel.observed[rows],
        {k: v[rows] for k, v in panel.known.items()},
        {k: v[rows] for k, v in panel.static.items()},
    )


__all__ = [
    "BacktestResult",
    "WindowForecast",
    "interval_calibration",
    "origins_for",
    "run_backtest",
    "score",  # re-exported from models.evaluation
]
