"""Scoring quantile forecasts at their origins: the one evaluation of the project.

The backtest, the demo's report and the updater's shadow evaluation all score through
:func:`evaluate` (one block of forecasts) or :class:`Scorer` (blocks made at several
origins, scored together). A block is ``R`` rows (a series at an origin) of ``H`` steps:
actuals ``(R, H)``, quantile forecasts ``(R, H, Q)`` at ``levels``, and per row the history
before the origin (or its MASE scale). Missing actuals are NaN or ``False`` in ``observed``.

- **MASE**: per row, the mean absolute error of the median forecast over the row's
  actuals divided by the row's in-sample seasonal-naive MAE
  (:func:`models.metrics.seasonal_naive_scale` of the history before its origin); the
  figure is the mean over the rows that have a scale (a history that never changed has
  none).
- **WQL**, **WAPE** and **bias** pool every observed (row, step) in numerator and
  denominator.
- **coverage80**: the share of observed actuals inside the 0.1–0.9 interval;
  **quantile_coverage**: per level ``τ``, the share at or below the ``τ`` forecast.

The quantile levels used for the median and the interval are the ones nearest 0.5, 0.1
and 0.9. The primitive formulas are in :mod:`models.metrics`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from models import metrics
from models.exceptions import InputError


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The scores of a set of forecasts; :meth:`summary` gives the headline figures.

    Attributes:
        mase, wql, wape, bias, coverage80: as in the module docstring (NaN when undefined).
        quantile_coverage: level → share of observed actuals at or below its forecast.
        row_mase: ``(R,)`` MASE of every row (NaN where it has no scale or no actual).
        observed: how many actuals were scored.
    """

    mase: float
    wql: float
    wape: float
    bias: float
    coverage80: float
    quantile_coverage: dict[float, float]
    row_mase: np.ndarray
    observed: int

    def summary(self) -> dict[str, float]:
        """``mase, wql, wape, bias, coverage80``: what the backtest reports per method."""
        return {
            "mase": self.mase,
            "wql": self.wql,
            "wape": self.wape,
            "bias": self.bias,
            "coverage80": self.coverage80,
        }


def level_index(levels: Sequence[float], level: float) -> int:
    """Index of the quantile level nearest ``level``."""
    return int(np.argmin([abs(q - level) for q in levels]))


def evaluate(
    actual: np.ndarray,
    quantiles: np.ndarray,
    levels: Sequence[float],
    *,
    history: np.ndarray | None = None,
    history_observed: np.ndarray | None = None,
    season: int | None = None,
    scale: np.ndarray | None = None,
    observed: np.ndarray | None = None,
) -> Evaluation:
    """Score ``quantiles (R, H, Q)`` at ``levels`` against ``actual (R, H)``.

    The MASE scale of each row comes from ``history (R, T)`` (with ``history_observed (R,
    T)``, default all observed) and ``season``, or is given as ``scale (R,)``: exactly one
    of the two. ``observed (R, H)`` marks the actuals that exist (default: the non-NaN ones).
    """
    lv = [float(x) for x in levels]
    y = _actuals(actual, observed)
    q = _quantiles(quantiles, y.shape, len(lv))
    s = _scale(y.shape[0], history, history_observed, season, scale)
    med = q[..., level_index(lv, 0.5)]
    lo, hi = q[..., level_index(lv, 0.1)], q[..., level_index(lv, 0.9)]
    row_mase = metrics.mase(y, med, s)
    below = metrics.quantile_coverage(y, q)
    return Evaluation(
        mase=float(np.nanmean(row_mase)) if np.isfinite(row_mase).any() else float("nan"),
        wql=metrics.wql(y, q, lv),
        wape=metrics.wape(y, med),
        bias=metrics.bias(y, med),
        coverage80=metrics.coverage(y, lo, hi),
        quantile_coverage={level: float(c) for level, c in zip(lv, below, strict=True)},
        row_mase=row_mase,
        observed=int((~np.isnan(y)).sum()),
    )


def _actuals(actual: np.ndarray, observed: np.ndarray | None) -> np.ndarray:
    y = np.asarray(actual, dtype=np.float64)
    if y.ndim != 2:
        raise InputError(f"actuals must be (rows, horizon), got shape {y.shape}")
    if observed is None:
        return y
    mask = np.asarray(observed, dtype=bool)
    if mask.shape != y.shape:
        raise InputError(f"observed must have the actuals' shape {y.shape}, got {mask.shape}")
    return np.where(mask, y, np.nan)


def _quantiles(quantiles: np.ndarray, shape: tuple[int, ...], num_levels: int) -> np.ndarray:
    q = np.asarray(quantiles, dtype=np.float64)
    if q.shape != (*shape, num_levels):
        raise InputError(
            f"quantiles must be (rows, horizon, levels) = {(*shape, num_levels)} to match the "
            f"actuals and the {num_levels} levels, got {q.shape}"
        )
    return q


def _scale(
    rows: int,
    history: np.ndarray | None,
    history_observed: np.ndarray | None,
    season: int | None,
    scale: np.ndarray | None,
) -> np.ndarray:
    """The ``(R,)`` MASE scales: given, or the seasonal-naive MAE of each row's history."""
    if (history is None) == (scale is None):
        raise InputError("pass either history= (with season=) or scale= for the MASE scale")
    if scale is not None:
        s = np.asarray(scale, dtype=np.float64)
        if s.shape != (rows,):
            raise InputError(f"scale must be ({rows},), one per row, got {s.shape}")
        return s
    h = np.asarray(history, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] != rows:
        raise InputError(f"history must be ({rows}, periods), one row per forecast, got {h.shape}")
    if season is None or season < 1:
        raise InputError(f"season must be a positive number of periods, got {season}")
    if history_observed is not None and np.shape(history_observed) != h.shape:
        raise InputError(
            f"history_observed must have the history's shape {h.shape}, got "
            f"{np.shape(history_observed)}"
        )
    return metrics.seasonal_naive_scale(h, season, history_observed)


@dataclass
class Scorer:
    """Blocks of forecasts made at several origins, scored together by :meth:`evaluation`
    (rows of every block stacked; shorter horizons padded as missing actuals).

    ``add`` takes one origin's block with the history before that origin, so each row's
    MASE scale is computed from what was known when the forecast was made.
    """

    levels: Sequence[float]
    season: int
    _actual: list[np.ndarray] = field(default_factory=list)
    _quantiles: list[np.ndarray] = field(default_factory=list)
    _scale: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        actual: np.ndarray,
        quantiles: np.ndarray,
        history: np.ndarray,
        history_observed: np.ndarray | None = None,
        observed: np.ndarray | None = None,
    ) -> None:
        """Add one origin's block: shapes as in :func:`evaluate`."""
        y = _actuals(actual, observed)
        self._actual.append(y)
        self._quantiles.append(_quantiles(quantiles, y.shape, len(self.levels)))
        self._scale.append(_scale(len(y), history, history_observed, self.season, None))

    def evaluation(self) -> Evaluation:
        """The scores of every block added so far."""
        if not self._actual:
            raise InputError("nothing to score: add at least one block of forecasts")
        width = max(a.shape[1] for a in self._actual)
        actual = np.concatenate([_pad(a, width) for a in self._actual], axis=0)
        quantiles = np.concatenate([_pad(q, width) for q in self._quantiles], axis=0)
        return evaluate(actual, quantiles, self.levels, scale=np.concatenate(self._scale))


def _pad(a: np.ndarray, width: int) -> np.ndarray:
    """``a`` with its horizon (axis 1) NaN-padded to ``width`` steps."""
    if a.shape[1] == width:
        return a
    out = np.full((a.shape[0], width, *a.shape[2:]), np.nan)
    out[:, : a.shape[1]] = a
    return out


class _Block(Protocol):
    origin: int
    series: np.ndarray
    actual: np.ndarray
    quantiles: np.ndarray


def evaluate_where(
    blocks: Iterable[_Block],
    target: np.ndarray,
    observed: np.ndarray,
    mask: np.ndarray,
    levels: Sequence[float],
    season: int,
) -> Evaluation:
    """The scores of backtest blocks (``models.backtest.WindowForecast``: rows ``series`` of
    a table forecast at ``origin``) on the (series, period) cells where ``mask (N, T)`` is
    true only, e.g. the promoted SKU-days. Each row's MASE scale is still the seasonal-naive
    MAE of its whole history before the origin (``target`` / ``observed``, ``(N, T)``)."""
    m = np.asarray(mask, dtype=bool)
    if m.shape != np.shape(target):
        raise InputError(f"the mask must have the table's shape {np.shape(target)}, got {m.shape}")
    scorer = Scorer(levels, season)
    for b in blocks:
        rows, h = np.asarray(b.series), b.actual.shape[1]
        keep = m[rows, b.origin : b.origin + h]
        keep = np.pad(keep, ((0, 0), (0, h - keep.shape[1])))
        scorer.add(
            b.actual,
            b.quantiles,
            target[rows, : b.origin],
            observed[rows, : b.origin],
            observed=keep & ~np.isnan(b.actual),
        )
    return scorer.evaluation()


def score(
    actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float], scale: np.ndarray
) -> dict[str, float]:
    """The headline figures of one block with given MASE scales ``(R,)``
    (``evaluate(..., scale=scale).summary()``)."""
    return evaluate(actual, quantiles, levels, scale=scale).summary()


__all__ = ["Evaluation", "Scorer", "evaluate", "evaluate_where", "level_index", "score"]
