"""The dependence parameter of interval totals and the input checks every part shares."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from models.exceptions import InputError

Dependence = Literal["equicorrelation", "ar1"]
DEPENDENCES: tuple[str, ...] = ("equicorrelation", "ar1")
DEFAULT_NUM_SAMPLES = 512
_COMONOTONE = 1.0 - 1e-12


@dataclass(frozen=True)
class IntervalDependence:
    """The dependence between days a forecaster's interval totals use (stored with it).

    ``rho`` in ``[0, 1]``: 0 independent days, 1 the sum of the daily quantiles.
    """

    rho: float
    kind: Dependence = "equicorrelation"

    def __post_init__(self) -> None:
        _check_rho(self.rho, self.kind)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"rho": ..., "kind": ...}``."""
        return {"rho": float(self.rho), "kind": self.kind}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntervalDependence:
        """Inverse of :meth:`as_dict`."""
        return cls(float(data["rho"]), data.get("kind", "equicorrelation"))


def _check_rho(rho: float, kind: str) -> None:
    if kind not in DEPENDENCES:
        raise InputError(f"dependence must be one of {DEPENDENCES}, got {kind!r}")
    if not (0.0 <= rho <= 1.0) or math.isnan(rho):
        raise InputError(f"rho must be in [0, 1], got {rho}")


DEFAULT_DEPENDENCE = IntervalDependence(0.35, "equicorrelation")
"""The transformer's rho fitted on the UCI backtest (``docs/intervals.md``): the fallback for
a model version that stores none. Refit per model with :func:`backtest_interval_metrics`."""


def _check_levels(levels: Sequence[float], what: str = "levels") -> tuple[float, ...]:
    lv = tuple(float(x) for x in levels)
    if not lv or any(not 0.0 < x < 1.0 for x in lv):
        raise InputError(f"{what} must be values in (0, 1), got {list(lv)}")
    return lv


def _check_forecast(q: ArrayLike, levels: Sequence[float]) -> tuple[np.ndarray, tuple[float, ...]]:
    lv = _check_levels(levels)
    if any(b <= a for a, b in itertools.pairwise(lv)):
        raise InputError(f"levels must be strictly increasing, got {list(lv)}")
    arr = np.asarray(q, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != len(lv):
        raise InputError(
            f"daily quantiles must have shape (n_series, horizon, {len(lv)}), got {arr.shape}"
        )
    if arr.shape[1] < 1:
        raise InputError("daily quantiles need a horizon of at least one day")
    if not np.isfinite(arr).all():
        raise InputError("daily quantiles contain NaN or infinite values")
    # non-negative and non-crossing, as every forecaster of the project returns them
    if arr.min() < 0.0:
        arr = np.clip(arr, 0.0, None)
    if not (arr[..., 1:] >= arr[..., :-1]).all():
        arr = np.maximum.accumulate(arr, axis=-1)
    return arr, lv


def _check_ks(ks: Sequence[int], horizon: int) -> tuple[int, ...]:
    out = tuple(int(k) for k in ks)
    if not out or any(k < 1 or k > horizon for k in out) or any(int(k) != k for k in ks):
        raise InputError(f"interval lengths ks must be integers in [1, {horizon}], got {list(ks)}")
    return out
