"""Calibrated quantile levels: what the network's quantiles cover on held-out windows, and
the levels to read off its quantile function so that each output level covers what it says.

After training, the network's quantiles ``q_j`` at levels ``τ_j`` are compared with the
actuals of the validation windows (series held out of training, see
:mod:`models.training`). The realised level of each quantile is

- ``P(y ≤ q_j)`` for ``τ_j > 0.5`` and ``P(y < q_j)`` for ``τ_j < 0.5`` (the median: their
  mean), so that the interval ``[q_low, q_high]`` covers ``P(q_low ≤ y ≤ q_high)`` — what
  :func:`models.metrics.coverage` measures — and ties at zero (closed days, intermittent
  demand) count for the interval as they do in the metric.

The realised levels, made non-decreasing and anchored at (0, 0) and (1, 1), define a
monotone map from nominal to realised level; its inverse gives, for each output level, the
nominal level ``τ'_j`` to read. :func:`apply_levels` reads the quantile function (linear
between the network's levels, flat beyond its outermost ones) at ``τ'``, so the output
stays non-negative and non-crossing; a level read beyond the network's outermost ones
(an interval that must widen) comes from an exponential tail.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.exceptions import InputError

#: Fewer observed validation values than this leave the levels as they are.
MIN_POINTS = 200


def realised_levels(
    y: np.ndarray, q: np.ndarray, levels: Sequence[float], observed: np.ndarray | None = None
) -> np.ndarray:
    """The level each quantile realises on ``y`` (see the module docstring).

    ``y``: actuals ``(N, H)``; ``q``: quantiles ``(N, H, Q)``; ``observed``: mask ``(N, H)``.
    Returns ``(Q,)``.
    """
    y = np.asarray(y, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if q.shape[:2] != y.shape or q.shape[2] != len(levels):
        raise InputError(
            f"quantiles {q.shape} do not match actuals {y.shape} and {len(levels)} levels"
        )
    mask = np.ones(y.shape, bool) if observed is None else np.asarray(observed, bool)
    yy, qq = y[mask][:, None], q[mask]
    below, at_or_below = (yy < qq).mean(axis=0), (yy <= qq).mean(axis=0)
    tau = np.asarray(levels, dtype=np.float64)
    return np.where(tau > 0.5, at_or_below, np.where(tau < 0.5, below, (below + at_or_below) / 2))


def calibrated_levels(
    levels: Sequence[float], realised: np.ndarray, shrink: float = 1.0
) -> list[float]:
    """The nominal levels to read so that each of ``levels`` is realised (inverse of the
    monotone map nominal → realised, interpolated linearly), moved only ``shrink`` of the
    way from ``levels`` (1: the whole correction). Non-decreasing, in [0, 1]."""
    if not 0.0 <= shrink <= 1.0:
        raise InputError(f"shrink must be in [0, 1], got {shrink}")
    tau = np.asarray(levels, dtype=np.float64)
    r = np.maximum.accumulate(np.clip(np.asarray(realised, dtype=np.float64), 0.0, 1.0))
    nominal = np.concatenate([[0.0], tau, [1.0]])
    real = np.concatenate([[0.0], r, [1.0]])
    real = real + np.arange(len(real)) * 1e-9  # strictly increasing for the inverse
    mapped = tau + shrink * (np.interp(tau, real, nominal) - tau)
    return [round(float(v), 6) for v in np.maximum.accumulate(mapped)]


def fit_levels(
    y: np.ndarray,
    q: np.ndarray,
    levels: Sequence[float],
    observed: np.ndarray | None = None,
    shrink: float = 1.0,
) -> list[float] | None:
    """:func:`calibrated_levels` from held-out actuals and quantiles; ``None`` (leave the
    levels as they are) with fewer than :data:`MIN_POINTS` observed values."""
    n = int(np.asarray(observed, bool).sum()) if observed is not None else int(np.size(y))
    if n < MIN_POINTS:
        return None
    return calibrated_levels(levels, realised_levels(y, q, levels, observed), shrink)


def apply_levels(q: np.ndarray, levels: Sequence[float], read_at: Sequence[float]) -> np.ndarray:
    """Quantiles at ``read_at`` from quantiles ``q`` ``(..., Q)`` at ``levels``: linear
    between levels; beyond the outermost ones an exponential tail whose scale matches the
    spacing of the two outermost quantiles on that side (as :mod:`models.intervals` reads
    the tails), never below 0 (nor below the lowest quantile where that is negative).
    Non-decreasing along the last axis; same shape as ``q``."""
    tau = np.asarray(levels, dtype=np.float64)
    want = np.clip(np.asarray(read_at, dtype=np.float64), 1e-3, 1.0 - 1e-3)
    at = np.clip(want, tau[0], tau[-1])
    hi = np.clip(np.searchsorted(tau, at, side="right"), 1, len(tau) - 1)
    lo = hi - 1
    w = (at - tau[lo]) / (tau[hi] - tau[lo])
    qf = q.astype(np.float64, copy=False)
    out = qf[..., lo] + w * (qf[..., hi] - qf[..., lo])  # exact between equal quantiles
    below, above = want < tau[0], want > tau[-1]
    if below.any():
        s_lo = (qf[..., 1:2] - qf[..., :1]) / np.log(tau[1] / tau[0])
        tail = qf[..., :1] - s_lo * np.log(tau[0] / want[below])
        floor = np.minimum(qf[..., :1], 0.0)
        out[..., below] = np.maximum(tail, floor)
    if above.any():
        s_hi = (qf[..., -1:] - qf[..., -2:-1]) / np.log((1 - tau[-2]) / (1 - tau[-1]))
        out[..., above] = qf[..., -1:] + s_hi * np.log((1 - tau[-1]) / (1 - want[above]))
    return np.maximum.accumulate(out, axis=-1).astype(q.dtype, copy=False)
