"""The live stages of the updater: champion/challenger, then probation.

A candidate that passes the offline evaluation is registered (not promoted) and put in
shadow as **challenger** (:mod:`models.shadow`): the forecast worker forecasts every window
with it too, on ``forecasts.shadow``. Each cycle scores both models on the event-time days
since (:func:`updater.evaluation.live_evaluate`: their forecasts at each daily origin
against the actuals that have arrived, the same cells for both); after
``updater_shadow_days`` the promotion rule decides on those live figures — promote, or
reject.

After a promotion the previous champion stays in shadow on **probation** for
``updater_probation_days``: when the new champion's live WQL is behind it by the WQL margin
(over at least ``updater_min_sku_days`` observed SKU-days), the updater rolls back at once;
at the end of probation, the promotion is confirmed and the shadow cleared.

Every switch is ordered so that a crash between two writes never leaves a version
champion that did not win: the shadow pointer moves first (to the probation of the
version about to be replaced), then the champion pointer. A shadow whose ``against`` is not
the champion any more (a crash in between, or an operator's ``model promote``) is
abandoned, and the next cycle starts clean.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from models.shadow import Shadow
from schemas import DataRange, ModelUpdate
from updater import history as hist
from updater.evaluation import decide, figures, live_evaluate
from updater.triggers import Trigger

if TYPE_CHECKING:
    from updater.cycle import Cycle, Decision

log = logging.getLogger(__name__)

QUIET_OUTCOMES = ("idle", "shadowing", "probation")
"""Outcomes of a cycle that decided nothing (not written to the audit log)."""


def model_update(
    decision: Decision, action: str, version: str, parent: str | None, stage: str
) -> ModelUpdate:
    """The ``ModelUpdate`` of ``decision``: its triggers, figures, data range."""
    data = decision.data
    metrics = {
        f"{who}_{k}": v
        for who, figs in decision.figures.items()
        for k, v in figs.items()
        if np.isfinite(v)
    }
    kinds = [t.kind for t in decision.triggers]
    return ModelUpdate(
        version=version,
        parent_version=parent,
        action=action,
        created_at=datetime.now(UTC),
        metrics=metrics,
        reason=(
            f"{stage}: trigger {','.join(kinds) or '-'}: {decision.reason}; data "
            f"{data.get('start')}..{data.get('end')} fingerprint {data.get('fingerprint')}"
        )[:500],
        stage=stage,
        triggers=kinds,
        figures={
            who: {k: float(v) for k, v in figs.items() if np.isfinite(v)}
            for who, figs in decision.figures.items()
        },
        data=DataRange(
            start=str(data.get("start")),
            end=str(data.get("end")),
            num_series=int(data.get("num_series") or 0),
            fingerprint=str(data.get("fingerprint")),
        )
        if data
        else None,
        event_time=decision.at,
    )


def live_decision(cycle: Cycle, decision: Decision, shadow: Shadow) -> None:
    """One cycle while ``shadow`` forecasts in shadow (see the module docstring)."""
    s = cycle.settings
    champ_version = decision.champion
    assert decision.at is not None and champ_version is not None
    decision.candidate = shadow.version
    offline = shadow.offline or {}
    decision.triggers = [Trigger.from_dict(t) for t in offline.get("triggers") or []]
    if shadow.against != champ_version:
        cycle.shadows.clear()
        decision.outcome = "abandoned"
        decision.reason = (
            f"the champion is {champ_version}, not {shadow.against} that {shadow.version} was "
            f"put in shadow against ({shadow.role}): shadow ended"
        )
        return
    day = hist.day_floor(decision.at)
    since = hist.day_floor(datetime.fromisoformat(shadow.since))
    elapsed = (day - since).days
    if shadow.role == "challenger" and elapsed < s.updater_shadow_days:
        # scored only when it is decided on: no models loaded, no store read until then
        decision.outcome = "shadowing"
        decision.reason = f"live day {elapsed} of {s.updater_shadow_days}"
        return
    role = "challenger" if shadow.role == "challenger" else "previous"
    champion = cycle.registry.load(champ_version, device="cpu")
    other = cycle.registry.load(shadow.version, device="cpu")
    history = cycle.read_history(champion, since - timedelta(days=s.updater_history_days), day)
    decision.data = history.data_range()
    panel = history.panel
    first = int(np.searchsorted(panel.index, np.datetime64(since.replace(tzinfo=None))))
    waiting = "shadowing" if shadow.role == "challenger" else "probation"
    if not 0 < first < panel.length:
        decision.outcome = waiting
        decision.reason = f"no live day observed yet since {since.date()}"
        return
    evals = live_evaluate({"champion": champion, role: other}, panel, first)
    decision.figures = {f"{who}_live": figures(e) for who, e in evals.items()}
    for who, figs in (offline.get("figures") or {}).items():
        decision.figures[f"{who}_offline"] = figs
    if shadow.role == "challenger":
        _challenger(cycle, decision, shadow, evals, elapsed)
    else:
        _probation(cycle, decision, shadow, evals, elapsed)


def _challenger(
    cycle: Cycle, decision: Decision, shadow: Shadow, evals: dict[str, Any], elapsed: int
) -> None:
    s = cycle.settings
    verdict = decide(
        evals["champion"],
        evals["challenger"],
        wql_margin=s.updater_wql_margin,
        mase_tolerance=s.updater_mase_tolerance,
        min_sku_days=s.updater_min_sku_days,
    )
    decision.reason = f"live over {elapsed} days: {verdict.reason}"
    old = decision.champion
    assert old is not None and decision.at is not None
    if not verdict.promote:
        cycle.shadows.clear()
        decision.outcome = "rejected"
        cycle.send(model_update(decision, "reject", shadow.version, old, "live"))
        return
    if s.updater_probation_days > 0:  # first the shadow pointer: see the module docstring
        cycle.shadows.set(Shadow(old, "probation", decision.at.isoformat(), against=shadow.version))
    else:
        cycle.shadows.clear()
    cycle.registry.promote(shadow.version)
    decision.outcome = "promoted"
    cycle.send(model_update(decision, "promote", shadow.version, old, "live"))


def _probation(
    cycle: Cycle, decision: Decision, shadow: Shadow, evals: dict[str, Any], elapsed: int
) -> None:
    s = cycle.settings
    new, previous = evals["champion"], evals["previous"]
    champ = decision.champion
    assert champ is not None
    enough = new.observed >= s.updater_min_sku_days
    behind = (
        enough
        and np.isfinite(new.wql)
        and np.isfinite(previous.wql)
        and new.wql > previous.wql * (1 + s.updater_wql_margin)
    )
    figures_text = (
        f"champion {champ} live WQL {new.wql:.4f} vs {shadow.version} {previous.wql:.4f} "
        f"over {new.observed} SKU-days, day {elapsed} of {s.updater_probation_days}"
    )
    if behind:
        ptr = cycle.registry.previous()
        if ptr and ptr[-1] == shadow.version:
            cycle.registry.rollback()
        else:
            cycle.registry.promote(shadow.version)
        cycle.shadows.clear()
        decision.outcome = "rolled_back"
        decision.reason = f"{figures_text}: behind by more than {s.updater_wql_margin:.0%}"
        cycle.send(model_update(decision, "rollback", shadow.version, champ, "probation"))
        return
    if elapsed >= s.updater_probation_days:
        cycle.shadows.clear()
        decision.outcome = "confirmed"
        decision.reason = f"{figures_text}: probation passed"
        return
    decision.outcome = "probation"
    decision.reason = figures_text


__all__ = ["QUIET_OUTCOMES", "live_decision", "model_update"]
