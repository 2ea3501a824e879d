"""Offline shadow evaluation and the promotion rule.

Both models forecast the most recent fully observed window (the last ``horizon`` days
before the watermark's day, held out of the fine-tune) from the same history, with the
window's actual ``price_rel`` as known future; :func:`models.evaluation.evaluate` scores
them (MASE scaled by each SKU's seasonal-naive error on that history: season 7 when the
history holds two weeks, else 1). :func:`decide` is the rule: promote when the candidate's
WQL is lower by at least ``wql_margin`` (a share of the champion's) and its MASE is at most
``mase_tolerance`` above the champion's, over at least ``min_sku_days`` observed SKU-days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.data import Panel
from models.evaluation import Evaluation, evaluate
from updater.exceptions import FineTuneDivergedError
from updater.history import panel_columns


def season_of(history_days: int) -> int:
    return 7 if history_days >= 14 else 1


def window_forecast(forecaster: Any, train: Panel, holdout: Panel) -> np.ndarray:
    """``forecaster``'s quantiles of ``holdout`` made from ``train`` (the window's actual
    known covariates as the future)."""
    future = dict(holdout.known)
    return np.asarray(forecaster.predict(train, holdout.length, future or None))


def shadow_evaluate(
    forecaster: Any, train: Panel, holdout: Panel, who: str, q: np.ndarray | None = None
) -> Evaluation:
    """Score ``forecaster``'s forecast of ``holdout`` made from ``train`` (``q``: that
    forecast, when already made)."""
    q = window_forecast(forecaster, train, holdout) if q is None else q
    if not np.isfinite(q).all():
        raise FineTuneDivergedError(f"the {who}'s forecasts hold NaN or infinite values")
    actual = np.where(holdout.observed, holdout.target, np.nan)
    return evaluate(
        actual,
        q,
        forecaster.quantile_levels,
        history=train.target,
        history_observed=train.observed,
        season=season_of(train.length),
    )


def standardized_errors(
    forecaster: Any, train: Panel, holdout: Panel, q: np.ndarray | None = None
) -> np.ndarray:
    """The champion's errors on the window, day by day: (actual - median) / scale, where the
    scale is each SKU's mean absolute day-to-day change in ``train`` (NaN-free, in order;
    ``q``: the champion's forecast of the window, when already made)."""
    q = window_forecast(forecaster, train, holdout) if q is None else q
    levels = list(forecaster.quantile_levels)
    med = q[..., int(np.argmin([abs(x - 0.5) for x in levels]))]
    diffs = np.abs(np.diff(train.target, axis=1))
    scale = np.maximum(diffs.mean(axis=1) if diffs.shape[1] else np.ones(train.num_series), 1.0)
    err = (holdout.target - med) / scale[:, None]
    err = np.where(holdout.observed, np.abs(err), np.nan).T.ravel()
    return err[np.isfinite(err)]


def live_evaluate(forecasters: dict[str, Any], panel: Panel, first: int) -> dict[str, Evaluation]:
    """Score each of ``forecasters`` (by role) on the live days: the forecasts each makes at
    every daily origin from period ``first`` of ``panel`` to its last, from the history
    before that origin (the window's actual known covariates as the future, as the offline
    stage), against every actual the panel holds after it — the steps whose actuals have
    arrived, so the latest origins count with fewer steps. The same (SKU, origin, step) cells
    for every model; the MASE scale of each SKU is its seasonal-naive error before ``first``.
    """
    if not 0 < first < panel.length:
        raise ValueError(f"live origins lie inside the panel (1..{panel.length - 1}): {first}")
    horizon = min(int(f.config.prediction_length) for f in forecasters.values())
    actual_rows: list[np.ndarray] = []
    q_rows: dict[str, list[np.ndarray]] = {who: [] for who in forecasters}
    for origin in range(first, panel.length):
        train = panel_columns(panel, 0, origin)
        holdout = panel_columns(panel, origin, min(origin + horizon, panel.length))
        pad = horizon - holdout.length
        actual = np.where(holdout.observed, holdout.target, np.nan)
        actual_rows.append(np.pad(actual, ((0, 0), (0, pad)), constant_values=np.nan))
        for who, forecaster in forecasters.items():
            q = window_forecast(forecaster, train, holdout)
            if not np.isfinite(q).all():
                raise FineTuneDivergedError(f"the {who}'s forecasts hold NaN or infinite values")
            q_rows[who].append(np.pad(q, ((0, 0), (0, pad), (0, 0))))
    actual = np.concatenate(actual_rows)
    repeats = len(actual_rows)
    before = panel_columns(panel, 0, first)
    return {
        who: evaluate(
            actual,
            np.concatenate(rows),
            forecasters[who].quantile_levels,
            history=np.concatenate([before.target] * repeats),
            history_observed=np.concatenate([before.observed] * repeats),
            season=season_of(before.length),
        )
        for who, rows in q_rows.items()
    }


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str


def figures(e: Evaluation) -> dict[str, float]:
    return {k: round(v, 6) if math.isfinite(v) else float("nan") for k, v in e.summary().items()}


def decide(
    champion: Evaluation,
    candidate: Evaluation,
    *,
    wql_margin: float,
    mase_tolerance: float,
    min_sku_days: int,
) -> Verdict:
    """The promotion rule (see the module docstring); NaN figures never promote."""
    n = candidate.observed
    if n < min_sku_days:
        return Verdict(False, f"{n} observed SKU-days in the window, fewer than {min_sku_days}")
    cw, kw = champion.wql, candidate.wql
    if not (math.isfinite(cw) and math.isfinite(kw)):
        return Verdict(False, f"WQL undefined (champion {cw}, candidate {kw})")
    if kw > cw * (1 - wql_margin):
        return Verdict(
            False,
            f"candidate WQL {kw:.4f} is not {wql_margin:.0%} below the champion's {cw:.4f}",
        )
    cm, km = champion.mase, candidate.mase
    if math.isfinite(cm) and (not math.isfinite(km) or km > cm * (1 + mase_tolerance)):
        return Verdict(
            False,
            f"candidate MASE {km:.4f} is more than {mase_tolerance:.0%} above the "
            f"champion's {cm:.4f}",
        )
    return Verdict(
        True,
        f"candidate WQL {kw:.4f} vs champion {cw:.4f}, MASE {km:.4f} vs {cm:.4f} over {n} SKU-days",
    )


__all__ = [
    "Verdict",
    "decide",
    "figures",
    "live_evaluate",
    "season_of",
    "shadow_evaluate",
    "standardized_errors",
]
