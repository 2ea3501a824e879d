"""Forecast accuracy metrics (numpy). Arrays: ``y`` ``(N, H)`` actuals, ``q`` ``(N, H, Q)``
quantile forecasts at ``levels`` ``(Q,)``, ``point`` ``(N, H)``; NaN actuals are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.exceptions import InputError


def seasonal_naive_scale(
    history: np.ndarray, season: int, observed: np.ndarray | None = None
) -> np.ndarray:
    """In-sample seasonal-naive MAE of each series, the MASE denominator.

    ``s_i = mean_t |x_{i,t} - x_{i,t-m}|`` over the steps where both ``t`` and ``t - m``
    are observed (``m`` = ``season``). Series with fewer than ``m + 1`` observed steps fall
    back to lag 1; series without any usable pair get NaN.

    Args:
        history: ``(N, T)``; observed: ``(N, T)`` bool (all True when omitted).

    Returns:
        ``(N,)`` scales.
    """
    x = np.asarray(history, dtype=np.float64)
    obs = np.ones_like(x, dtype=bool) if observed is None else np.asarray(observed, dtype=bool)
    out = np.full(x.shape[0], np.nan)
    for lag in (season, 1):
        if x.shape[1] <= lag:
            continue
        both = obs[:, lag:] & obs[:, :-lag]
        err = np.where(both, np.abs(x[:, lag:] - x[:, :-lag]), 0.0)
        cnt = both.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = err.sum(axis=1) / cnt
        fill = np.isnan(out) & (cnt > 0)
        out[fill] = s[fill]
    return out


def mase(y: np.ndarray, point: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per-series mean absolute scaled error.

    ``MASE_i = mean_h |y_{i,h} - yhat_{i,h}| / s_i`` with ``s_i`` from
    :func:`seasonal_naive_scale`. Returns ``(N,)``; NaN where ``s_i`` is 0 or NaN (a series
    that never changed in-sample has no scale) or every actual is NaN.
    """
    _check(y, point)
    mae = np.nanmean(np.abs(y - point), axis=1) if y.size else np.zeros(len(y))
    s = np.asarray(scale, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((s > 0) & np.isfinite(s), mae / s, np.nan)


def quantile_loss_sum(y: np.ndarray, q: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """``(Q,)`` summed pinball losses ``sum_{i,h} 2 max(τ (y - q_τ), (τ - 1)(y - q_τ))``."""
    lv = np.asarray(levels, dtype=np.float64)
    if q.shape != (*y.shape, len(lv)):
        raise InputError(f"quantiles must be {(*y.shape, len(lv))}, got {q.shape}")
    diff = y[..., None] - q
    loss = 2.0 * np.maximum(lv * diff, (lv - 1.0) * diff)
    return np.nansum(loss.reshape(-1, len(lv)), axis=0)


def wql(y: np.ndarray, q: np.ndarray, levels: Sequence[float]) -> float:
    """Weighted quantile loss, averaged over the quantile levels.

    ``WQL = (1/|T|) sum_τ [ 2 sum_{i,h} ρ_τ(y_{ih}, q_{ih,τ}) / sum_{i,h} |y_{ih}| ]`` with
    ``ρ_τ(y, q) = max(τ (y - q), (τ - 1)(y - q))`` (the pinball loss). 0 is perfect; when
    every quantile is one point forecast and the levels are symmetric around 0.5, WQL
    equals the WAPE of that point forecast.
    """
    denom = float(np.nansum(np.abs(y)))
    if denom == 0:
        return float("nan")
    return float(quantile_loss_sum(y, q, levels).mean() / denom)


def wape(y: np.ndarray, point: np.ndarray) -> float:
    """Weighted absolute percentage error ``sum |y - yhat| / sum |y|`` (over all i, h)."""
    _check(y, point)
    denom = float(np.nansum(np.abs(y)))
    return float(np.nansum(np.abs(y - point)) / denom) if denom else float("nan")


def bias(y: np.ndarray, point: np.ndarray) -> float:
    """Relative bias ``sum (yhat - y) / sum |y|``: > 0 over-forecasts, < 0 under-forecasts."""
    _check(y, point)
    denom = float(np.nansum(np.abs(y)))
    mask = ~np.isnan(y)
    return float(np.sum((point - y)[mask]) / denom) if denom else float("nan")


def coverage(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actuals inside ``[lower, upper]``: ``mean 1{lo <= y <= hi}`` (0.8 is ideal
    for the 0.1–0.9 interval)."""
    _check(y, lower)
    _check(y, upper)
    mask = ~np.isnan(y)
    inside = (y >= lower) & (y <= upper)
    return float(inside[mask].mean()) if mask.any() else float("nan")


def quantile_coverage(y: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``(Q,)`` share of actuals at or below each quantile forecast: ``mean 1{y <= q_τ}``
    (``τ`` itself is ideal for a calibrated level)."""
    if q.shape[:-1] != np.shape(y):
        raise InputError(f"quantiles must be {(*np.shape(y), q.shape[-1])}, got {q.shape}")
    mask = ~np.isnan(y)
    below = y[..., None] <= q
    return below[mask].mean(axis=0) if mask.any() else np.full(q.shape[-1], np.nan)


def _check(y: np.ndarray, other: np.ndarray) -> None:
    if np.shape(y) != np.shape(other):
        raise InputError(f"actuals {np.shape(y)} and forecasts {np.shape(other)} differ in shape")


__all__ = [
    "bias",
    "coverage",
    "mase",
    "quantile_coverage",
    "quantile_loss_sum",
    "seasonal_naive_scale",
    "wape",
    "wql",
]
