"""Calendar, holiday and "shop open" covariates computed from timestamps alone.

These are known-future by construction: they depend only on the date, the country's public
holidays (``holidays`` package) and the opening pattern estimated from the training history.
The result is a ``(T, F)`` float32 array shared by every series of a panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import holidays as holidays_lib
import numpy as np
import pandas as pd

from models.exceptions import InputError


@lru_cache(maxsize=64)
def _holiday_dates(country: str, years: tuple[int, ...]) -> frozenset[pd.Timestamp]:
    try:
        cal = holidays_lib.country_holidays(country, years=list(years))
    except (NotImplementedError, KeyError) as exc:
        raise InputError(
            f"unknown holiday country {country!r}: use an ISO code supported by the holidays "
            "package (GB, US, DE, ...) or none"
        ) from exc
    return frozenset(pd.Timestamp(d) for d in cal)


def holiday_flags(index: pd.DatetimeIndex, country: str | None, freq: str) -> np.ndarray:
    """``(T,)`` 1.0 when the period contains a public holiday of ``country`` (0 if ``None``).

    For weekly periods the flag says the week (Monday start) contains a holiday; for hourly
    periods, that the day is a holiday.
    """
    if not country or len(index) == 0:
        return np.zeros(len(index), dtype=np.float32)
    years = tuple(range(index.min().year - 1, index.max().year + 2))
    days = _holiday_dates(country, years)
    norm = index.normalize()
    if freq == "W":
        return np.array(
            [any(d + pd.Timedelta(days=k) in days for k in range(7)) for d in norm],
            dtype=np.float32,
        )
    return np.array([d in days for d in norm], dtype=np.float32)


def christmas_flags(index: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """``(T,)`` 1.0 inside the Christmas shutdown window, 24 Dec to 3 Jan (weeks touching it)."""
    norm = index.normalize()
    if freq == "W":
        ends = norm + pd.Timedelta(days=6)
        flag = ((norm.month == 12) & (norm.day >= 18)) | ((ends.month == 1) & (ends.day <= 9))
        return np.asarray(flag, dtype=np.float32)
    flag = ((norm.month == 12) & (norm.day >= 24)) | ((norm.month == 1) & (norm.day <= 3))
    return np.asarray(flag, dtype=np.float32)


def season_position(index: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """``(T,)`` int position in the natural season: weekday (D), hour (H), week of year (W)."""
    if freq == "D":
        return np.asarray(index.day_of_week, dtype=np.int64)
    if freq == "H":
        return np.asarray(index.hour, dtype=np.int64)
    return np.asarray(index.isocalendar().week.to_numpy(dtype=np.int64) - 1, dtype=np.int64)


SEASON_SIZE = {"D": 7, "H": 24, "W": 53}


def estimate_open_rates(
    index: pd.DatetimeIndex, totals: np.ndarray, freq: str, country: str | None
) -> tuple[list[float], float]:
    """Share of periods in which the whole shop sold anything, per season position and on holidays.

    Args:
        index: ``(T,)`` periods; totals: ``(T,)`` summed target over every series.

    Returns:
        (rates per season position, rate on holidays); positions never seen get 1.0.
    """
    pos = season_position(index, freq)
    sold = (np.asarray(totals) > 0).astype(np.float64)
    hol = holiday_flags(index, country, freq) > 0
    rates = []
    for k in range(SEASON_SIZE[freq]):
        sel = (pos == k) & ~hol
        rates.append(float(sold[sel].mean()) if sel.any() else 1.0)
    holiday_rate = float(sold[hol].mean()) if hol.any() else 1.0
    return rates, holiday_rate


def calendar_feature_names(freq: str) -> list[str]:
    """Names of the columns :func:`calendar_features` returns for ``freq``."""
    if freq == "D":
        base = [f"dow_{k}" for k in range(7)] + ["month_sin", "month_cos", "dom"]
    elif freq == "W":
        base = ["woy_sin", "woy_cos"]
    elif freq == "H":
        base = ["hour_sin", "hour_cos"] + [f"dow_{k}" for k in range(7)]
    else:
        raise InputError(f"unknown frequency {freq!r}; use D, W or H")
    return [*base, "holiday", "christmas", "open_rate"]


def calendar_features(
    index: pd.DatetimeIndex,
    freq: str,
    country: str | None,
    open_rate: Sequence[float] | None = None,
    holiday_open_rate: float | None = None,
) -> np.ndarray:
    """``(T, F)`` float32 calendar covariates, columns as in :func:`calendar_feature_names`.

    ``open_rate`` is the expected share of the shop being open: the rate of the period's
    season position, times ``holiday_open_rate`` on holidays (1.0 when rates are unknown).
    """
    idx = pd.DatetimeIndex(index)
    cols: list[np.ndarray] = []
    if freq == "D":
        dow = np.asarray(idx.day_of_week)
        cols += [(dow == k).astype(np.float32) for k in range(7)]
        ang = 2 * np.pi * (np.asarray(idx.month) - 1) / 12.0
        cols += [np.sin(ang), np.cos(ang), (np.asarray(idx.day) - 1) / 30.0]
    elif freq == "W":
        ang = 2 * np.pi * season_position(idx, freq) / 52.0
        cols += [np.sin(ang), np.cos(ang)]
    elif freq == "H":
        ang = 2 * np.pi * np.asarray(idx.hour) / 24.0
        dow = np.asarray(idx.day_of_week)
        cols += [np.sin(ang), np.cos(ang)] + [(dow == k).astype(np.float32) for k in range(7)]
    else:
        raise InputError(f"unknown frequency {freq!r}; use D, W or H")
    hol = holiday_flags(idx, country, freq)
    cols += [hol, christmas_flags(idx, freq)]
    if open_rate is None:
        rate = np.ones(len(idx), dtype=np.float32)
    else:
        rate = np.asarray(open_rate, dtype=np.float32)[season_position(idx, freq)]
        if holiday_open_rate is not None:
            rate = np.where(hol > 0, rate * holiday_open_rate, rate)
    cols.append(rate)
    return np.stack([np.asarray(c, dtype=np.float32) for c in cols], axis=1)


__all__ = [
    "SEASON_SIZE",
    "calendar_feature_names",
    "calendar_features",
    "christmas_flags",
    "estimate_open_rates",
    "holiday_flags",
    "season_position",
]
