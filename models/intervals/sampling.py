"""The copula sampler: each day's quantile function, the fixed scrambled-Halton draws and
the cached block matrices that turn daily quantiles into draws of k-day totals
(``models.intervals`` docstring, steps 1-3)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike

from models.exceptions import InputError
from models.intervals.dependence import _check_levels


def _level_weights(
    levels: tuple[float, ...], u: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The quantile function at ``u`` as ``ca·q[ja] + cb·q[jb]`` (each array ``u.shape``)."""
    lv = np.asarray(levels)
    n = len(lv)
    u = np.asarray(u, dtype=np.float64)
    ja = np.zeros(u.shape, dtype=np.int64)
    jb = np.zeros(u.shape, dtype=np.int64)
    ca = np.ones(u.shape)
    cb = np.zeros(u.shape)
    if n == 1:
        return ja, jb, ca, cb
    inner = (u > lv[0]) & (u <= lv[-1])
    j = np.clip(np.searchsorted(lv, u, side="left") - 1, 0, n - 2)
    w = (u - lv[j]) / (lv[j + 1] - lv[j])
    ja = np.where(inner, j, ja)
    jb = np.where(inner, j + 1, jb)
    ca = np.where(inner, 1.0 - w, ca)
    cb = np.where(inner, w, cb)
    upper = u > lv[-1]
    if upper.any():
        span = math.log((1.0 - lv[-2]) / (1.0 - lv[-1]))
        with np.errstate(divide="ignore"):
            t = np.log((1.0 - lv[-1]) / np.maximum(1.0 - u, 1e-300)) / span
        ja = np.where(upper, n - 1, ja)
        jb = np.where(upper, n - 2, jb)
        ca = np.where(upper, 1.0 + t, ca)
        cb = np.where(upper, -t, cb)
    return ja, jb, ca, cb


def quantile_function(q: ArrayLike, levels: Sequence[float], u: ArrayLike) -> np.ndarray:
    """Each day's quantile function (module docstring, step 1) evaluated at levels ``u``.

    ``q`` ``(..., L)`` at ``levels`` → ``(..., len(u))``; ``u`` in ``[0, 1)``.
    """
    lv = _check_levels(levels)
    arr = np.asarray(q, dtype=np.float64)
    uu = np.atleast_1d(np.asarray(u, dtype=np.float64))
    if ((uu < 0.0) | (uu >= 1.0)).any():
        raise InputError(f"u must be in [0, 1), got {uu.tolist()}")
    ja, jb, ca, cb = _level_weights(lv, uu)
    return np.asarray(arr[..., ja] * ca + arr[..., jb] * cb)


def _phi(x: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return np.asarray(0.5 * (1.0 + erf(x / math.sqrt(2.0))))


def _primes(count: int) -> list[int]:
    out: list[int] = []
    n = 2
    while len(out) < count:
        if all(n % p for p in out if p * p <= n):
            out.append(n)
        n += 1
    return out


@lru_cache(maxsize=16)
def _normal_scores(dims: int, num_samples: int, seed: int) -> np.ndarray:
    """``(M, dims)`` standard-normal scores of a scrambled Halton point set.

    Column ``j`` is the radical inverse of the point index in the ``j``-th prime base with
    a seeded random permutation of the digits at every position (Owen-type scrambling:
    unbiased, deterministic for a seed), mapped by ``Φ⁻¹``. Measured on the UCI backtest's
    forecasts: at ``M = 512`` up to half the error of a Latin hypercube of the same size.
    """
    rng = np.random.default_rng(seed)
    idx = np.arange(num_samples)
    pts = np.empty((num_samples, dims))
    for j, base in enumerate(_primes(dims)):
        digits = max(1, math.ceil(53 * math.log(2) / math.log(base)))
        x = np.zeros(num_samples)
        rest = idx.copy()
        scale = 1.0 / base
        for _ in range(digits):
            x += rng.permutation(base)[rest % base] * scale
            rest //= base
            scale /= base
        pts[:, j] = x
    inv = np.vectorize(NormalDist().inv_cdf, otypes=[np.float64])
    out = np.asarray(inv(np.clip(pts, 1e-15, 1.0 - 1e-15)))
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _uniforms(horizon: int, rho: float, kind: str, num_samples: int, seed: int) -> np.ndarray:
    """``(M, H)`` copula draws ``U_d = Φ(Z_d)`` (module docstring, step 2)."""
    e = _normal_scores(horizon + 1, num_samples, seed)
    if kind == "equicorrelation":
        z = math.sqrt(rho) * e[:, :1] + math.sqrt(1.0 - rho) * e[:, 1:]
    else:
        z = np.empty((num_samples, horizon))
        z[:, 0] = e[:, 1]
        c = math.sqrt(max(1.0 - rho * rho, 0.0))
        for d in range(1, horizon):
            z[:, d] = rho * z[:, d - 1] + c * e[:, d + 1]
    u = np.clip(_phi(z), 0.0, 1.0 - 1e-12)
    u.setflags(write=False)
    return u


@lru_cache(maxsize=64)
def _block_matrices(
    levels: tuple[float, ...],
    horizon: int,
    bounds: tuple[int, ...],
    rho: float,
    kind: str,
    num_samples: int,
    seed: int,
) -> tuple[np.ndarray, ...]:
    """For the day blocks ``[0, b_0), [b_0, b_1), ...``: ``(block·L, M)`` matrices with
    ``q[:, block].reshape(N, -1) @ B`` the draws of the block's total (cumulated → k-day)."""
    u = _uniforms(horizon, rho, kind, num_samples, seed)
    ja, jb, ca, cb = _level_weights(levels, u)
    n_lv = len(levels)
    coef = np.zeros((num_samples, horizon, n_lv))
    m_idx, d_idx = np.indices((num_samples, horizon))
    np.add.at(coef, (m_idx, d_idx, ja), ca)
    np.add.at(coef, (m_idx, d_idx, jb), cb)
    per_day = coef.transpose(1, 2, 0)  # (H, L, M)
    mats = []
    start = 0
    for stop in bounds:
        mat = np.ascontiguousarray(per_day[start:stop].reshape((stop - start) * n_lv, num_samples))
        mat.setflags(write=False)
        mats.append(mat)
        start = stop
    return tuple(mats)


def _hazen(sorted_draws: np.ndarray, out_levels: tuple[float, ...]) -> np.ndarray:
    """Hazen sample quantiles (position ``τ·M - ½``) of draws sorted along the last axis."""
    m = sorted_draws.shape[-1]
    pos = np.clip(np.asarray(out_levels) * m - 0.5, 0.0, m - 1.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, m - 1)
    frac = pos - lo
    return np.asarray(sorted_draws[..., lo] * (1.0 - frac) + sorted_draws[..., hi] * frac)


def _draws(
    arr: np.ndarray,
    levels: tuple[float, ...],
    bounds: tuple[int, ...],
    rho: float,
    kind: str,
    num_samples: int,
    seed: int,
) -> np.ndarray:
    """``(N, len(bounds), M)`` unsorted draws of the total over the first ``k`` days, for
    each ``k`` in the increasing ``bounds`` (block products, then cumulated)."""
    n, horizon, _ = arr.shape
    mats = _block_matrices(levels, horizon, bounds, rho, kind, num_samples, seed)
    draws = np.empty((n, len(bounds), num_samples))
    start = 0
    for i, (stop, mat) in enumerate(zip(bounds, mats, strict=True)):
        draws[:, i] = arr[:, start:stop].reshape(n, -1) @ mat
        start = stop
    for i in range(1, len(bounds)):  # block totals → k-day totals
        draws[:, i] += draws[:, i - 1]
    return draws


def _monotone(out: np.ndarray, ks: tuple[int, ...], out_levels: tuple[float, ...]) -> np.ndarray:
    """Non-negative, non-decreasing in ``k`` (in sorted order of ``ks``) and in level."""
    out = np.clip(out, 0.0, None)
    k_order = np.argsort(np.asarray(ks), kind="stable")
    l_order = np.argsort(np.asarray(out_levels), kind="stable")
    sub = out[:, k_order][:, :, l_order]
    sub = np.maximum.accumulate(np.maximum.accumulate(sub, axis=1), axis=2)
    res = np.empty_like(out)
    res[np.ix_(np.arange(out.shape[0]), k_order, l_order)] = sub
    return res
