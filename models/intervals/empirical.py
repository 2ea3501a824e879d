"""The history baseline of interval totals: empirical quantiles of past k-day totals."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from models.exceptions import InputError
from models.intervals.dependence import _check_levels
from models.intervals.sampling import _monotone


def empirical_interval_quantiles(
    history: ArrayLike,
    ks: Sequence[int],
    out_levels: Sequence[float],
    lookback: int = 56,
    observed: ArrayLike | None = None,
) -> np.ndarray:
    """History baseline: empirical quantiles of each series' past ``k``-day rolling totals.

    ``history`` ``(N, T)`` (unobserved steps given by ``observed`` are not demand); the
    totals are those of the ``k`` consecutive observed days ending at each of the last
    ``lookback`` days. A series with no complete ``k``-day window uses ``k`` times the
    quantiles of its observed days; one with none, 0. Linear (type 7) quantiles, as the
    baselines use. Returns ``(N, len(ks), len(out_levels))``, non-negative and
    non-decreasing in level and ``k``.
    """
    x = np.asarray(history, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise InputError(f"history must have shape (n_series, T >= 1), got {x.shape}")
    obs = np.ones(x.shape, dtype=bool) if observed is None else np.asarray(observed, dtype=bool)
    if obs.shape != x.shape:
        raise InputError(f"observed must have shape {x.shape}, got {obs.shape}")
    if lookback < 1:
        raise InputError(f"lookback must be >= 1, got {lookback}")
    kk = tuple(int(k) for k in ks)
    if not kk or any(k < 1 for k in kk):
        raise InputError(f"interval lengths ks must be >= 1, got {list(ks)}")
    olv = list(_check_levels(out_levels, "out_levels"))
    n, t = x.shape
    vals = np.where(obs, np.clip(x, 0.0, None), 0.0)
    if not np.isfinite(vals).all():
        raise InputError("history contains NaN or infinite values where observed")
    csum = np.concatenate([np.zeros((n, 1)), np.cumsum(vals, axis=1)], axis=1)
    cobs = np.concatenate([np.zeros((n, 1)), np.cumsum(obs, axis=1)], axis=1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: handled below
        daily = np.nanquantile(np.where(obs, vals, np.nan), olv, axis=1).T  # (N, Lo)
    daily = np.nan_to_num(daily)
    out = np.zeros((n, len(kk), len(olv)))
    for i, k in enumerate(kk):
        ends = np.arange(max(k, t - lookback + 1), t + 1)  # window = days [e - k, e)
        if ends.size == 0:
            out[:, i] = k * daily
            continue
        tot = csum[:, ends] - csum[:, ends - k]
        full = (cobs[:, ends] - cobs[:, ends - k]) == k
        tot = np.where(full, tot, np.nan)
        has = full.any(axis=1)
        qs = np.nanquantile(tot[has], olv, axis=1).T if has.any() else None
        out[~has, i] = k * daily[~has]
        if qs is not None:
            out[has, i] = qs
    return _monotone(out, kk, tuple(olv))
