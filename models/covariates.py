"""One definition of every derived covariate: the table builder, training and the forecast
worker all call these functions, so a covariate means the same thing offline and live.

Arrays are ``(n_series, n_periods)``, oldest period first; a period is a day for the
forecast worker and the period of the table (day, week, hour) for the table builder.

- ``price_rel`` (:func:`price_rel`): the period's mean unit price paid (revenue / units)
  over the *reference price*, the median of the mean unit prices of the periods with sales
  among the :data:`PRICE_REF_PERIODS` periods before it (four weeks). 1.0 in a period without
  sales, and where no earlier period had sales. Trailing, so it never looks ahead; rounded
  to 4 decimals, so a table file and the worker agree exactly. The known future of a
  forecast holds the last price seen over the reference at the origin
  (:func:`price_rel_ahead`).
- ``promo_flag`` / ``promo_depth`` (:func:`promotion_covariates`): 1 / the deepest discount
  (a fraction) of the promotions whose planned interval overlaps the period, else 0.
- ``display_share`` / ``mailer_share`` (:func:`promotion_shares`): the largest share of the
  stores (``PlannedPromotion.store_share``) of the ``display`` / ``mailer`` promotions whose
  planned interval overlaps the period, else 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from models.exceptions import InputError

#: Periods before a period whose median price is its reference price (four weeks).
PRICE_REF_PERIODS: dict[str, int] = {"D": 28, "W": 4, "H": 28 * 24}
#: Decimals of ``price_rel`` (the table's file and the worker agree exactly).
PRICE_REL_DECIMALS = 4
#: Known covariates the forecast worker derives from the feature store.
SERVED_KNOWN: frozenset[str] = frozenset(
    {"price_rel", "promo_flag", "promo_depth", "display_share", "mailer_share"}
)
#: The share covariates of :func:`promotion_shares`: name → promotion kind.
SHARE_COVARIATES: dict[str, str] = {"display_share": "display", "mailer_share": "mailer"}


def ref_periods(freq: str) -> int:
    """How many periods back the reference price of ``price_rel`` looks at ``freq``."""
    try:
        return PRICE_REF_PERIODS[freq.upper()]
    except KeyError:
        raise InputError(f"unknown frequency {freq!r}; use one of D, W, H") from None


def unit_price(units: np.ndarray, revenue: np.ndarray) -> np.ndarray:
    """Mean unit price paid per period (revenue / units); NaN where nothing sold."""
    units = np.asarray(units, dtype=np.float64)
    revenue = np.asarray(revenue, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(units > 0, revenue / np.where(units > 0, units, 1.0), np.nan)


def reference_price(price: np.ndarray, lookback: int) -> np.ndarray:
    """Median of the finite prices among the ``lookback`` periods before each period (NaN
    where there are none). Shape as ``price`` (2-D)."""
    price = np.atleast_2d(np.asarray(price, dtype=np.float64))
    if lookback < 1:
        raise InputError(f"the reference price needs a lookback of at least 1, got {lookback}")
    n, t = price.shape
    padded = np.concatenate([np.full((n, lookback), np.nan), price], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded[:, :-1], lookback, axis=1)
    ref = np.full((n, t), np.nan)
    has = np.isfinite(windows).any(axis=2)
    if has.any():
        ref[has] = np.nanmedian(windows[has], axis=1)
    return ref


def price_rel(units: np.ndarray, revenue: np.ndarray, lookback: int) -> np.ndarray:
    """``price_rel`` per period (see the module docstring). Shape as ``units`` (2-D)."""
    price = np.atleast_2d(unit_price(units, revenue))
    ref = reference_price(price, lookback)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = price / ref
    rel = np.where(np.isfinite(rel) & (ref > 0), rel, 1.0)
    return np.round(rel, PRICE_REL_DECIMALS)


def price_rel_ahead(
    units: np.ndarray, revenue: np.ndarray, last_price: Sequence[float | None], lookback: int
) -> np.ndarray:
    """The known future of ``price_rel`` from an origin: the last price seen over the
    reference price at the origin (the ``lookback`` periods before it). Shape (n_series,);
    1.0 where either is unknown."""
    price = np.atleast_2d(unit_price(units, revenue))
    tail = price[:, -lookback:]
    ref = np.full(tail.shape[0], np.nan)
    has = np.isfinite(tail).any(axis=1)
    if has.any():
        ref[has] = np.nanmedian(tail[has], axis=1)
    last = np.array([np.nan if p is None else float(p) for p in last_price])
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = last / ref
    rel = np.where(np.isfinite(rel) & (ref > 0) & (last > 0), rel, 1.0)
    return np.round(rel, PRICE_REL_DECIMALS)


@dataclass(frozen=True, slots=True)
class PlannedPromotion:
    """A promotion's planned interval (epoch ms, end exclusive), discount depth, kind
    (``PromotionEvent.kind``) and share of the stores it runs in."""

    start_ms: int
    end_ms: int
    depth: float = 0.0
    kind: str = "price_cut"
    store_share: float = 1.0


def _period_range(promo: PlannedPromotion, first_ms: int, period_ms: int, n: int) -> range:
    """The periods (of ``n`` from ``first_ms``) that the promotion's planned interval overlaps."""
    lo = max(0, (promo.start_ms - first_ms) // period_ms)
    hi = min(n, -((first_ms - promo.end_ms) // period_ms))  # ceil division
    return range(lo, max(lo, hi))


def promotion_covariates(
    promotions: Iterable[Iterable[PlannedPromotion]], first_ms: int, period_ms: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``promo_flag`` and ``promo_depth`` of ``n`` periods starting at ``first_ms``, for each
    series' promotions. A period is promoted when a promotion's planned interval overlaps
    it. Shapes (n_series, n)."""
    per_series = [list(p) for p in promotions]
    flag = np.zeros((len(per_series), n))
    depth = np.zeros((len(per_series), n))
    for i, promos in enumerate(per_series):
        for promo in promos:
            span = _period_range(promo, first_ms, period_ms, n)
            if not span:
                continue
            lo, hi = span.start, span.stop
            flag[i, lo:hi] = 1.0
            depth[i, lo:hi] = np.maximum(depth[i, lo:hi], promo.depth)
    return flag, depth


def promotion_shares(
    promotions: Iterable[Iterable[PlannedPromotion]], first_ms: int, period_ms: int, n: int
) -> dict[str, np.ndarray]:
    """``display_share`` and ``mailer_share`` (:data:`SHARE_COVARIATES`) of ``n`` periods
    starting at ``first_ms``: per period the largest ``store_share`` of the promotions of
    that kind whose planned interval overlaps it, else 0. Shapes (n_series, n)."""
    per_series = [list(p) for p in promotions]
    out = {name: np.zeros((len(per_series), n)) for name in SHARE_COVARIATES}
    by_kind = {kind: name for name, kind in SHARE_COVARIATES.items()}
    for i, promos in enumerate(per_series):
        for promo in promos:
            name = by_kind.get(promo.kind)
            span = _period_range(promo, first_ms, period_ms, n)
            if name is None or not span:
                continue
            row = out[name][i]
            row[span.start : span.stop] = np.maximum(row[span.start : span.stop], promo.store_share)
    return out
