"""Draws of the undershoot of a reorder point: how far below it the stock position is at
the look that finds it below.

A position that drops by the demand ``X`` between two looks passes a level at a random
point of one step: renewal theory gives the stationary undershoot ``U`` the density
``P(X > x) / E[X]``, i.e. ``U = V·X*`` with ``X*`` the size-biased step (a step of size
``x`` is ``x`` times as likely to be the one that crosses) and ``V`` uniform on ``[0, 1)``.
Its mean is ``E[X^2] / (2 E[X])``: about half a day of demand for a steady seller, and for a
lumpy one (20 units one day in ten) 10 units, five days of its mean demand. A reorder point
that covers the lead time alone, or the lead time plus one day, runs short in those cycles.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from models.exceptions import InputError
from models.intervals.dependence import DEFAULT_NUM_SAMPLES, _check_forecast
from models.intervals.sampling import quantile_function

STEP_GRID = 64
"""Levels at which each day's quantile function is read for the step distribution."""


def undershoot_draws(
    q: ArrayLike,
    levels: list[float] | tuple[float, ...],
    days: ArrayLike,
    *,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """``(N, num_samples)`` draws of the undershoot ``U`` (module docstring) of ``N`` series.

    ``q`` ``(N, H, L)`` daily quantiles at ``levels``; a look every day, so the step is one
    day's demand, its distribution pooled over each series' first ``days`` days (``(N,)``,
    at least 1, at most ``H``: the lead time, over which the position falls). Draws are
    deterministic (``seed``) and independent of the copula draws of the totals, in a fixed
    shuffled order; a series with no demand expected draws 0.
    """
    arr, lv = _check_forecast(q, levels)
    n, horizon, _ = arr.shape
    span = np.clip(np.ceil(np.asarray(days, dtype=np.float64).reshape(-1)), 1, horizon)
    if span.shape[0] != n:
        raise InputError(f"days must have {n} values, got {span.shape[0]}")
    if num_samples < 2:
        raise InputError(f"num_samples must be >= 2, got {num_samples}")
    grid = (np.arange(STEP_GRID) + 0.5) / STEP_GRID
    used = int(span.max())
    steps = np.clip(quantile_function(arr[:, :used], lv, grid), 0.0, None)  # (N, H', G)
    inside = np.arange(used)[None, :, None] < span[:, None, None]
    weights = (steps * inside).reshape(n, -1)  # size-biased: P(step) ∝ its size
    values = steps.reshape(n, -1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(num_samples)  # which size-biased level each draw takes
    v = rng.permutation((np.arange(num_samples) + 0.5) / num_samples)
    pick = (np.arange(num_samples) + 0.5) / num_samples  # sorted: one cache-friendly search
    total = weights.sum(axis=1)
    live = np.flatnonzero(total > 0)
    out = np.zeros((n, num_samples))
    if live.size:
        # one sorted search for every series: row i's cumulative weights shifted by i
        width = values.shape[1]
        cum = np.cumsum(weights[live], axis=1) / total[live, None]
        cum[:, -1] = 1.0
        shift = np.arange(live.size)[:, None]
        flat = np.searchsorted((cum + shift).ravel(), (pick[None, :] + shift).ravel())
        idx = np.minimum(flat.reshape(live.size, num_samples) - shift * width, width - 1)
        sized = np.take_along_axis(values[live], idx[:, order], axis=1)
        out[live] = v[None, :] * sized
    return out
