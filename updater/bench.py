"""``demandcast bench updater``: the updater's decisions replayed over the demo's period.

The UCI log from the demo's split to its end, day by day in event time, the top SKUs of
the demo's training table (the daily series the feature store holds for them: the
consistency check of ``demandcast replay`` vouches that they are equal). Every
``cadence_days`` event-time days the updater's own decision runs on the history before
that day: its triggers (schedule since the champion's training cut, holiday or season
within the horizon, Page-Hinkley drift of the champion's errors; the UCI log has no
promotions), the fine-tune (:func:`updater.cycle.fine_tune_candidate`: the updater's
steps, learning rate, trainable parameters, threads and budget), the offline shadow
evaluation on the last fully observed window held out of the fine-tune and the promotion
rule (:func:`updater.evaluation.decide`). Between decisions the *served* model (the first
champion, or the last candidate promoted) forecasts each day from the context before it,
and so does the *frozen* first champion; both are scored on the same SKU-days (every
horizon step the log covers). Not through Kafka: the live forecast worker's hot reload and
the ``forecasts.shadow`` topic are not exercised here, and a candidate that passes offline
is promoted at once (as with ``DEMANDCAST_UPDATER_SHADOW_DAYS=0``): the live stage and the
probation (:mod:`updater.live`) can only make promotions rarer.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from models.data import Panel
from models.evaluation import evaluate
from streams.bench.restock import daily_forecasts, daily_history
from streams.serving.model_holder import ServingModel
from streams.settings import Settings
from updater.cycle import fine_tune_candidate
from updater.drift import PageHinkley
from updater.evaluation import (
    decide,
    figures,
    shadow_evaluate,
    standardized_errors,
    window_forecast,
)
from updater.exceptions import UpdaterError
from updater.history import split_panel
from updater.triggers import drift_trigger, holiday_trigger, schedule_trigger


@dataclass(frozen=True)
class UpdaterBenchOptions:
    log: Path
    split: datetime = datetime(2011, 9, 1, tzinfo=UTC)
    cadence_days: int = 7
    """Event-time days between two decisions of the updater."""
    bad_candidate: bool = False
    """Fine-tune every candidate on shuffled targets: each must be rejected."""


def _panel(history: np.ndarray, index: Any, skus: list[str], t: int, days: int) -> Panel:
    """The ``days`` before day ``t`` of the SKUs that sold in them (observed from first
    sale), as the updater reads them from the store."""
    lo = max(0, t - days)
    units = history[:, lo:t]
    seen = (np.cumsum(history[:, :t] > 0, axis=1) > 0)[:, lo:t]
    keep = np.flatnonzero(units.sum(axis=1) > 0)
    return Panel(
        series_ids=[skus[i] for i in keep],
        index=index[lo:t],
        freq="D",
        target=units[keep].astype(np.float64),
        observed=seen[keep],
    )


def _score(
    demand: np.ndarray,
    quantiles: np.ndarray,
    levels: list[float],
    history: np.ndarray,
    days: list[int],
) -> dict[str, float]:
    """Pooled MASE / WQL / coverage80 of the daily forecasts made on ``days`` (every
    step the replay covers)."""
    n = demand.shape[0]
    horizon = quantiles.shape[2]
    padded = np.concatenate([demand, np.full((n, horizon), np.nan)], axis=1)
    actual = np.concatenate([padded[:, t : t + horizon] for t in days])
    q = np.concatenate([quantiles[t] for t in days])
    scale_history = np.concatenate([history] * len(days))
    e = evaluate(actual, q, levels, history=scale_history, season=7)
    out = e.summary()
    return {k: round(float(out[k]), 4) for k in ("mase", "wql", "coverage80")}


def bench_updater(
    settings: Settings,
    opts: UpdaterBenchOptions,
    frozen: ServingModel,
    champion: Any,
    skus: list[str],
    progress: Any = None,
) -> dict[str, Any]:
    """Replay the updater's decisions (module docstring); return the report."""
    s = settings
    t_start = time.perf_counter()
    history, index = daily_history(opts.log, skus)
    start = int(np.searchsorted(index, np.datetime64(opts.split.replace(tzinfo=None))))
    days = history.shape[1] - start
    if days < 1:
        raise UpdaterError(f"the log holds no day after {opts.split.date()}")
    horizon = frozen.horizon
    levels = list(frozen.quantile_levels)
    frozen_q = daily_forecasts(frozen, history, index, start)
    served_q = np.empty_like(frozen_q)
    current, version, cut = champion, frozen.version, (opts.split - timedelta(days=1)).date()
    seasons = [x.strip() for x in s.updater_seasons.split(",") if x.strip()]
    decisions: list[dict[str, Any]] = []
    fine_tune_s: list[float] = []
    for t0 in range(0, days, opts.cadence_days):
        t = start + t0
        at = datetime.fromisoformat(str(index[t].date())).replace(tzinfo=UTC)
        panel = _panel(history, index, skus, t, s.updater_history_days)
        train, holdout = split_panel(panel, horizon)
        found = [schedule_trigger(at, cut, s.updater_schedule_days)]
        if s.updater_holiday_trigger:
            found.append(holiday_trigger(at, horizon, s.holiday_country, seasons))
        detector = PageHinkley(delta=s.updater_drift_delta, threshold=s.updater_drift_threshold)
        champ_q = window_forecast(current, train, holdout)
        errors = standardized_errors(current, train, holdout, champ_q)
        found.append(drift_trigger(at, detector, errors))
        triggers = [x for x in found if x is not None]
        record: dict[str, Any] = {
            "day": at.date().isoformat(),
            "champion": version,
            "triggers": [x.kind for x in triggers],
        }
        if triggers:
            began = time.perf_counter()
            candidate = fine_tune_candidate(s, current, train, shuffle_targets=opts.bad_candidate)
            fine_tune_s.append(time.perf_counter() - began)
            champ_eval = shadow_evaluate(current, train, holdout, "champion", champ_q)
            cand_eval = shadow_evaluate(candidate, train, holdout, "candidate")
            verdict = decide(
                champ_eval,
                cand_eval,
                wql_margin=s.updater_wql_margin,
                mase_tolerance=s.updater_mase_tolerance,
                min_sku_days=s.updater_min_sku_days,
            )
            record.update(
                outcome="promoted" if verdict.promote else "rejected",
                reason=verdict.reason,
                fine_tune_s=round(fine_tune_s[-1], 1),
                champion_wql=figures(champ_eval)["wql"],
                candidate_wql=figures(cand_eval)["wql"],
            )
            if verdict.promote:
                current, cut = candidate, (at - timedelta(days=1)).date()
                version = f"candidate@{at.date()}"
        else:
            record["outcome"] = "idle"
        decisions.append(record)
        if progress is not None:
            progress(record)
        stop = min(t + opts.cadence_days, start + days)
        served = dataclasses.replace(frozen, version=version, forecaster=current)
        served_q[t0 : stop - start] = daily_forecasts(served, history, index, t, stop)
    demand = history[:, start:]
    before = history[:, :start]
    every = list(range(days))
    months: dict[str, list[int]] = {}
    for t0 in every:
        months.setdefault(str(index[start + t0].date())[:7], []).append(t0)
    frozen_all = _score(demand, frozen_q, levels, before, every)
    served_all = _score(demand, served_q, levels, before, every)
    by_month = {
        m: {
            "frozen_wql": _score(demand, frozen_q, levels, before, d)["wql"],
            "served_wql": _score(demand, served_q, levels, before, d)["wql"],
        }
        for m, d in months.items()
    }
    outcomes = [d["outcome"] for d in decisions]
    worst = max(
        (v["served_wql"] / v["frozen_wql"] - 1.0 for v in by_month.values() if v["frozen_wql"]),
        default=float("nan"),
    )
    return {
        "how": "the updater's triggers, fine-tune, offline shadow evaluation and promotion "
        "rule every cadence_days of event time on the log's daily series; served and frozen "
        "daily forecasts scored on the same SKU-days; not through Kafka",
        "period": {"first_day": str(index[start].date()), "days": days},
        "skus": len(skus),
        "cadence_days": opts.cadence_days,
        "bad_candidate": opts.bad_candidate,
        "updater": {
            "steps": s.updater_steps,
            "lr": s.updater_lr,
            "trainable": s.updater_trainable,
            "history_days": s.updater_history_days,
            "wql_margin": s.updater_wql_margin,
            "mase_tolerance": s.updater_mase_tolerance,
            "cpu_threads": s.updater_cpu_threads,
        },
        "frozen": frozen_all,
        "served": served_all,
        "served_vs_frozen_wql": round(served_all["wql"] / frozen_all["wql"] - 1.0, 4),
        "months": by_month,
        "worst_month_served_vs_frozen_wql": round(worst, 4),
        "triggers": sum(bool(d["triggers"]) for d in decisions),
        "fine_tunes": len(fine_tune_s),
        "promotions": outcomes.count("promoted"),
        "rejections": outcomes.count("rejected"),
        "rollbacks": None,  # probation after a promotion is not replayed here
        "fine_tune_s": {
            "median": round(float(np.median(fine_tune_s)), 1) if fine_tune_s else None,
            "max": round(max(fine_tune_s), 1) if fine_tune_s else None,
        },
        "decisions": decisions,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
