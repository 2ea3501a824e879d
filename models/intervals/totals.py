"""Quantiles of k-day totals from daily quantile forecasts: :func:`interval_quantiles` and
the restock helper :func:`demand_quantile_over`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from models.exceptions import InputError
from models.intervals.dependence import (
    _COMONOTONE,
    DEFAULT_NUM_SAMPLES,
    Dependence,
    _check_forecast,
    _check_ks,
    _check_levels,
    _check_rho,
)
from models.intervals.sampling import _draws, _hazen, _monotone, quantile_function


def interval_quantiles(
    q: ArrayLike,
    levels: Sequence[float],
    ks: Sequence[int],
    out_levels: Sequence[float],
    rho: float = 0.0,
    dependence: Dependence = "equicorrelation",
    *,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """Quantiles of the total demand over the first ``k`` days, for each ``k`` in ``ks``.

    Args:
        q: daily quantile forecasts ``(n_series, horizon, L)`` at ``levels`` (day 0 first).
        levels: the ``L`` strictly increasing levels in (0, 1) of ``q``'s last axis.
        ks: interval lengths in days, each in ``[1, horizon]``.
        out_levels: the levels in (0, 1) wanted for the totals.
        rho: dependence between days in ``[0, 1]`` (0 independent, 1 comonotone).
        dependence: ``"equicorrelation"`` or ``"ar1"`` (module docstring, step 2).
        num_samples: joint draws of the fixed common random numbers (``M``).
        seed: the seed of those draws (fixed: results are deterministic).

    Returns:
        ``(n_series, len(ks), len(out_levels))``: non-negative, non-decreasing in level and
        in ``k``; for ``k = 1`` the day-0 quantile function at ``out_levels``; for
        ``rho = 1`` the sum of the daily quantile functions at ``out_levels``.
    """
    arr, lv = _check_forecast(q, levels)
    n, horizon, _ = arr.shape
    kk = _check_ks(ks, horizon)
    olv = _check_levels(out_levels, "out_levels")
    _check_rho(float(rho), dependence)
    if num_samples < 2:
        raise InputError(f"num_samples must be >= 2, got {num_samples}")
    daily = quantile_function(arr, lv, np.asarray(olv))  # (N, H, Lo)
    if float(rho) >= _COMONOTONE:
        out = np.cumsum(daily, axis=1)[:, np.asarray(kk) - 1, :]
    else:
        out = np.empty((n, len(kk), len(olv)))
        bounds = tuple(sorted({k for k in kk if k > 1}))
        if bounds:
            draws = _draws(arr, lv, bounds, float(rho), dependence, num_samples, seed)
            draws.sort(axis=-1)
            got = _hazen(draws, olv)
            where = {k: i for i, k in enumerate(bounds)}
            for i, k in enumerate(kk):
                if k > 1:
                    out[:, i] = got[:, where[k]]
        ones = [i for i, k in enumerate(kk) if k == 1]
        out[:, ones, :] = daily[:, None, 0, :]
    return _monotone(out, kk, olv)


def demand_quantile_over(
    q: ArrayLike,
    levels: Sequence[float],
    days: ArrayLike,
    level: float,
    rho: float = 0.0,
    dependence: Dependence = "equicorrelation",
    *,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
    plus: np.ndarray | None = None,
) -> np.ndarray:
    """The ``level`` quantile of demand over each series' own ``days`` (the restock rule).

    ``q`` ``(N, H, L)``, ``days`` ``(N,)`` non-negative and possibly fractional or beyond
    the horizon → ``(N,)``. Fractional days interpolate linearly between the totals over
    ``floor(days)`` and ``ceil(days)`` days (0 for 0 days); days beyond the horizon
    continue with the mean of the daily quantile functions, as
    ``streams.alerts.demand_over`` continues at the mean daily level.

    ``plus`` ``(N, num_samples)``: draws of an independent amount added to each draw of
    the total before its quantile is taken (the restock rule adds the undershoot of the
    reorder point, :func:`models.intervals.undershoot_draws`); the quantile of the sum is
    then taken from the copula draws even for one day or ``rho = 1``.
    """
    arr, lv = _check_forecast(q, levels)
    d = np.clip(np.asarray(days, dtype=np.float64).reshape(-1), 0.0, None)
    n, horizon, _ = arr.shape
    if d.shape[0] != n or not np.isfinite(d).all():
        raise InputError(f"days must be {n} finite values, got shape {d.shape}")
    lo = np.floor(d).astype(np.int64)
    hi = np.ceil(d).astype(np.int64)
    top = int(hi.max(initial=0))
    if top == 0 and plus is None:
        return np.zeros(n)
    if top > horizon:
        extra = np.repeat(arr.mean(axis=1, keepdims=True), top - horizon, axis=1)
        arr = np.concatenate([arr, extra], axis=1)
    lv_out = (float(level),)
    _check_levels(lv_out, "level")
    _check_rho(float(rho), dependence)
    if plus is not None:
        return _quantile_with(arr, lv, d, lv_out, float(rho), dependence, num_samples, seed, plus)
    daily = quantile_function(arr, lv, np.asarray(lv_out))[..., 0]  # (N, H')
    if float(rho) >= _COMONOTONE:
        cum = np.concatenate([np.zeros((n, 1)), np.cumsum(daily, axis=1)], axis=1)
        rows = np.arange(n)
        return _between(lambda k: cum[rows, k], d, lo, hi)
    # sample only each series' own two interval lengths (not every length for every one)
    bounds = tuple(sorted({int(k) for k in np.concatenate([lo, hi]) if k > 1}))
    draws = _draws(arr, lv, bounds, float(rho), dependence, num_samples, seed) if bounds else None
    col = np.zeros(top + 1, dtype=np.int64)
    col[list(bounds)] = np.arange(len(bounds))

    def total(k: np.ndarray) -> np.ndarray:
        out = np.where(k == 1, daily[:, 0], 0.0)
        many = np.flatnonzero(k > 1)
        if many.size and draws is not None:
            picked = draws[many, col[k[many]]]
            picked.sort(axis=-1)
            out[many] = _hazen(picked, lv_out)[:, 0]
        return out

    return _between(total, d, lo, hi)


def _quantile_with(
    arr: np.ndarray,
    lv: tuple[float, ...],
    d: np.ndarray,
    lv_out: tuple[float, ...],
    rho: float,
    dependence: Dependence,
    num_samples: int,
    seed: int,
    plus: np.ndarray,
) -> np.ndarray:
    """:func:`demand_quantile_over` with ``plus`` draws added to the total's draws."""
    n = arr.shape[0]
    extra = np.asarray(plus, dtype=np.float64)
    if extra.shape != (n, num_samples) or not np.isfinite(extra).all():
        raise InputError(f"plus must be ({n}, {num_samples}) finite draws, got {extra.shape}")
    lo = np.floor(d).astype(np.int64)
    hi = np.ceil(d).astype(np.int64)
    bounds = tuple(sorted({int(k) for k in np.concatenate([lo, hi]) if k > 0}))
    if bounds:
        draws = _draws(arr, lv, bounds, min(rho, _COMONOTONE), dependence, num_samples, seed)
    else:
        draws = np.zeros((n, 1, num_samples))
    col = np.zeros(int(hi.max()) + 1, dtype=np.int64)
    col[list(bounds)] = np.arange(len(bounds))
    rows = np.arange(n)

    def total(k: np.ndarray) -> np.ndarray:
        picked = np.where((k > 0)[:, None], draws[rows, col[k]], 0.0) + extra
        picked.sort(axis=-1)
        return np.asarray(_hazen(picked, lv_out)[:, 0])

    return _between(total, d, lo, hi)


def _between(
    total: Callable[[np.ndarray], np.ndarray], d: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """The total over fractional ``d`` days: linear between the totals over ``lo`` =
    floor(d) and ``hi`` = ceil(d) days (never decreasing), non-negative."""
    t_lo = total(lo)
    t_hi = np.maximum(total(hi), t_lo)
    return np.asarray(np.clip(t_lo + (d - lo) * (t_hi - t_lo), 0.0, None))
