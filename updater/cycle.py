"""One decision cycle of the updater (``demandcast updater once``).

Under the registry's :class:`~updater.audit.DecisionLock`: read event time (the watermark)
and the recent daily history of the top SKUs from the feature store; evaluate the champion
on the most recent fully observed window; check the triggers (schedule, promotion, holiday,
drift); when one fires, fine-tune a copy of the champion on the history before that window
(within the time budget, CPU threads limited), evaluate the candidate on the same window,
and promote it (registry version, atomic champion switch, ``ModelUpdate`` on
``model.updates``) or reject it. Every triggered cycle appends one record to the audit log,
whatever its outcome.

Nothing reaches the registry before the candidate has passed: a fine-tune that diverges,
runs out of budget or is killed leaves no version; a failing registry write leaves the
champion pointer as it was (the registry writes versions and the pointer atomically).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from models.registry import ModelRegistry
from models.shadow import Shadow, ShadowPointer
from schemas import DemandcastError, ModelUpdate
from streams.observability.metrics import UpdaterMetrics
from streams.settings import Settings
from streams.store.keys import layout_of
from updater import history as hist
from updater.audit import AuditLog, DecisionLock
from updater.drift import PageHinkley
from updater.evaluation import (
    decide,
    figures,
    shadow_evaluate,
    standardized_errors,
    window_forecast,
)
from updater.exceptions import (
    BudgetExceededError,
    FineTuneDivergedError,
    NotEnoughHistoryError,
    UpdaterError,
)
from updater.live import QUIET_OUTCOMES, live_decision, model_update
from updater.triggers import (
    Trigger,
    drift_trigger,
    holiday_trigger,
    promotion_trigger,
    schedule_trigger,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CycleOptions:
    """Overrides of one cycle. ``force``: run as if this trigger kind fired. The faults are
    for tests and drills: ``shuffle_targets`` fine-tunes on targets shuffled across SKUs and
    days (a deliberately bad candidate); ``diverge`` fine-tunes at a million times the
    learning rate (the loss goes NaN within a few steps)."""

    force: str | None = None
    shuffle_targets: bool = False
    diverge: bool = False


@dataclass
class Decision:
    """What one cycle did: ``outcome`` is promoted, rejected, failed or idle (no trigger)."""

    outcome: str
    at: datetime | None = None
    champion: str | None = None
    candidate: str | None = None
    triggers: list[Trigger] = field(default_factory=list)
    reason: str = ""
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        return {
            "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "event_time": self.at.isoformat() if self.at else None,
            "outcome": self.outcome,
            "champion": self.champion,
            "candidate": self.candidate,
            "triggers": [t.as_dict() for t in self.triggers],
            "reason": self.reason,
            "figures": self.figures,
            "data": self.data,
            "seconds": round(self.seconds, 3),
        }


def training_cut(meta: dict[str, Any]) -> date | None:
    """The last day of the data a version was trained on (``training_data.end``)."""
    end = (meta.get("training_data") or {}).get("end")
    try:
        return datetime.fromisoformat(str(end)).date() if end else None
    except ValueError:
        return None


def _trainable(spec: str) -> str | list[str]:
    if spec in ("all", "head", "last_block"):
        return spec
    return [p.strip() for p in spec.split(",") if p.strip()]


class Cycle:
    """The decision cycle over a Redis client, a registry and a producer (see the module)."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: Any = None,
        registry: ModelRegistry | None = None,
        producer: Any = None,
    ) -> None:
        import redis

        self.settings = settings
        self.layout = layout_of(settings)
        self.client = client or redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
        self.registry = registry or ModelRegistry(settings.model_registry)
        self.audit = AuditLog(self.registry.root)
        self.shadows = ShadowPointer(self.registry.root)
        self._producer = producer

    @property
    def producer(self) -> Any:
        if self._producer is None:
            from streams.kafka.producer import Producer, producer_config

            self._producer = Producer(producer_config(self.settings), what="model updates")
        return self._producer

    def send(self, update: ModelUpdate) -> None:
        """Publish ``update`` on ``model.updates`` (confirmed within 30 s, else a warning:
        the workers also follow the registry's pointer files)."""
        self.producer.send(
            self.settings.topic_model_updates, update.to_json(), update.version.encode()
        )
        if self.producer.flush(30):
            log.warning(
                "the ModelUpdate (%s of %s) is not confirmed; workers poll the pointer",
                update.action,
                update.version,
            )

    def read_history(self, champion: Any, start: datetime, end: datetime) -> hist.History:
        """The daily history of the updater's top SKUs in ``[start, end)``, with the known
        covariates ``champion`` takes."""
        return hist.read_history(
            self.client,
            self.layout,
            start,
            end,
            top=self.settings.updater_top_skus,
            known=list(champion.config.known_covariates),
        )

    def event_time(self) -> datetime | None:
        return hist.event_time(self.client, self.layout, self.settings.topic_orders)

    def run(self, options: CycleOptions | None = None) -> Decision:
        """One cycle under the lock; ``UpdaterBusyError`` when another updater holds it."""
        with DecisionLock(self.registry.root):
            return self._run(options or CycleOptions())

    # ------------------------------------------------------------------ the steps
    def _run(self, options: CycleOptions) -> Decision:
        t0 = time.monotonic()
        s = self.settings
        champ_version = self.registry.champion()
        if champ_version is None:
            raise UpdaterError(
                f"no champion in {self.registry.root}: train one (`demandcast train`) first"
            )
        at = self.event_time()
        if at is None:
            raise NotEnoughHistoryError(
                "no watermark in the feature store yet: the stream worker has seen no orders"
            )
        decision = Decision("failed", at=at, champion=champ_version)
        try:
            shadow = self.shadows.get()
            if shadow is not None:  # one candidate at a time: the live stage decides first
                live_decision(self, decision, shadow)
                return decision
            champion = self.registry.load(champ_version, device="cpu")
            horizon = int(champion.config.prediction_length)
            end = hist.day_floor(at)
            history = self.read_history(champion, end - timedelta(days=s.updater_history_days), end)
            decision.data = history.data_range()
            log.info(
                "updater: champion %s at event time %s; history %s..%s, %d SKUs",
                champ_version,
                at.isoformat(),
                decision.data["start"],
                decision.data["end"],
                decision.data["num_series"],
            )
            train, holdout = hist.split_panel(history.panel, horizon)
            champ_q = window_forecast(champion, train, holdout)
            decision.triggers = self._triggers(
                champion, champ_version, at, train, holdout, horizon, champ_q
            )
            if options.force and not any(t.kind == options.force for t in decision.triggers):
                decision.triggers.append(Trigger(options.force, "forced by the operator", at))
            if not decision.triggers:
                decision.outcome, decision.reason = "idle", "no trigger fired"
                return decision
            champ_eval = shadow_evaluate(champion, train, holdout, "champion", champ_q)
            decision.figures["champion"] = figures(champ_eval)
            log.info(
                "updater: triggers %s; fine-tuning %d steps on %d days",
                ",".join(t.kind for t in decision.triggers),
                s.updater_steps,
                train.length,
            )
            began = time.monotonic()
            candidate = self._fine_tune(champion, train, options)
            cand_eval = shadow_evaluate(candidate, train, holdout, "candidate")
            decision.figures["candidate"] = figures(cand_eval)
            log.info(
                "updater: fine-tuned in %.1f s; offline WQL candidate %.4f vs champion %.4f",
                time.monotonic() - began,
                cand_eval.wql,
                champ_eval.wql,
            )
            verdict = decide(
                champ_eval,
                cand_eval,
                wql_margin=s.updater_wql_margin,
                mase_tolerance=s.updater_mase_tolerance,
                min_sku_days=s.updater_min_sku_days,
            )
            decision.reason = verdict.reason
            if not verdict.promote:
                decision.outcome = "rejected"
            elif s.updater_shadow_days > 0:
                self._challenge(decision, candidate, train)
            else:
                self._promote(decision, candidate, train)
        except (DemandcastError, OSError) as exc:
            note = f"{type(exc).__name__}: {exc}"
            if decision.outcome in ("promoted", "challenger", "rejected", "rolled_back"):
                # the pointers moved; only the message failed
                decision.reason += f"; the ModelUpdate was not sent ({note})"
            else:
                decision.outcome, decision.reason = "failed", note
        finally:
            decision.seconds = time.monotonic() - t0
            if decision.outcome not in QUIET_OUTCOMES:
                self.audit.append(decision.record())
        return decision

    def _triggers(
        self,
        champion: Any,
        version: str,
        at: datetime,
        train: Any,
        holdout: Any,
        horizon: int,
        champ_q: np.ndarray,
    ) -> list[Trigger]:
        s = self.settings
        found: list[Trigger | None] = [
            schedule_trigger(
                at, training_cut(self.registry.metadata(version)), s.updater_schedule_days
            )
        ]
        recent = dict(zip(train.series_ids, train.target[:, -28:].sum(axis=1), strict=True))
        changing = hist.promotion_changes(
            self.client,
            self.layout,
            list(recent),
            at - timedelta(days=1),
            at + timedelta(days=horizon),
        )
        found.append(promotion_trigger(at, changing, recent, s.updater_promo_share))
        if s.updater_holiday_trigger:
            seasons = [x.strip() for x in s.updater_seasons.split(",") if x.strip()]
            found.append(holiday_trigger(at, horizon, s.holiday_country, seasons))
        detector = PageHinkley(delta=s.updater_drift_delta, threshold=s.updater_drift_threshold)
        errors = standardized_errors(champion, train, holdout, champ_q)
        found.append(drift_trigger(at, detector, errors))
        return [t for t in found if t is not None]

    def _fine_tune(self, champion: Any, train: Any, options: CycleOptions) -> Any:
        return fine_tune_candidate(
            self.settings,
            champion,
            train,
            shuffle_targets=options.shuffle_targets,
            diverge=options.diverge,
        )

    def _register(self, decision: Decision, candidate: Any, train: Any) -> str:
        """Write ``candidate`` as a new version (not champion), with what decided it."""
        meta = {
            "training_data": {
                "source": "feature store",
                "start": str(train.index[0]),
                "end": str(train.index[-1]),
                "fingerprint": train.fingerprint(),
                "num_series": train.num_series,
                "freq": train.freq,
            },
            "updater": {
                "triggers": [t.as_dict() for t in decision.triggers],
                "figures": decision.figures,
                "evaluated_on": decision.data,
            },
        }
        version = self.registry.register(candidate, meta, parent=decision.champion, promote=False)
        decision.candidate = version
        return version

    def _challenge(self, decision: Decision, candidate: Any, train: Any) -> None:
        """The candidate passed offline: registered and put in shadow as challenger."""
        version = self._register(decision, candidate, train)
        assert decision.at is not None and decision.champion is not None
        offline = {
            "figures": decision.figures,
            "triggers": [t.as_dict() for t in decision.triggers],
            "data": decision.data,
        }
        self.shadows.set(
            Shadow(version, "challenger", decision.at.isoformat(), decision.champion, offline)
        )
        decision.outcome = "challenger"
        decision.reason = (
            f"offline: {decision.reason}; forecasts in shadow as challenger for "
            f"{self.settings.updater_shadow_days} event-time days"
        )
        self.send(model_update(decision, "candidate", version, decision.champion, "offline"))

    def _promote(self, decision: Decision, candidate: Any, train: Any) -> None:
        """The candidate passed offline and there is no live stage: promoted at once."""
        parent = decision.champion
        version = self._register(decision, candidate, train)
        self.registry.promote(version)
        decision.outcome = "promoted"
        self.send(model_update(decision, "promote", version, parent, "offline"))


def fine_tune_candidate(
    settings: Settings,
    champion: Any,
    train: Any,
    *,
    shuffle_targets: bool = False,
    diverge: bool = False,
) -> Any:
    """The updater's fine-tune: a warm start of ``champion`` on ``train`` with the updater's
    steps, learning rate, trainable parameters and CPU threads, stopped with an error when
    the loss is not finite or the time budget is spent. ``shuffle_targets`` trains on
    shuffled targets and ``diverge`` at a million times the learning rate (the deliberately
    bad candidates of the tests and ``bench updater --bad-candidate``)."""
    import torch

    s = settings
    panel = train
    if shuffle_targets:
        rng = np.random.default_rng(0)
        flat = train.target.ravel().copy()
        rng.shuffle(flat)
        panel = dataclasses.replace(
            train,
            target=flat.reshape(train.target.shape),
            observed=np.ones_like(train.observed),
        )
    started = time.monotonic()

    def guard(step: int, steps: int, loss: float, _val: float | None) -> None:
        if step % max(1, steps // 4) == 0 or step == steps:
            log.info("updater: fine-tune step %d of %d, loss %.4f", step, steps, loss)
        if not np.isfinite(loss):
            raise FineTuneDivergedError(
                f"the fine-tune diverged: loss {loss} at step {step} of {steps}; lower "
                "DEMANDCAST_UPDATER_LR"
            )
        if time.monotonic() - started > s.updater_budget_seconds:
            raise BudgetExceededError(
                f"the fine-tune passed its {s.updater_budget_seconds:g}s budget at step "
                f"{step} of {steps}; raise DEMANDCAST_UPDATER_BUDGET_SECONDS or lower "
                "DEMANDCAST_UPDATER_STEPS"
            )

    threads = torch.get_num_threads()
    training = dataclasses.replace(champion.training, num_threads=s.updater_cpu_threads)
    try:
        return champion.fine_tune(
            panel,
            steps=s.updater_steps,
            lr=s.updater_lr * (1e6 if diverge else 1.0),
            trainable=_trainable(s.updater_trainable),
            warmup=min(s.updater_steps // 10, 50),
            training=training,
            progress=guard,
        )
    finally:
        torch.set_num_threads(threads)


def run_once(settings: Settings, options: CycleOptions | None = None) -> Decision:
    """One decision cycle with fresh clients (``demandcast updater once``)."""
    return Cycle(settings).run(options)


def record_metrics(metrics: UpdaterMetrics, decision: Decision) -> None:
    """Count one decision: its outcome, triggers, fine-tune and shadow figures."""
    metrics.cycles.labels(decision.outcome).inc()
    for trigger in decision.triggers:
        metrics.triggers.labels(trigger.kind).inc()
    if decision.outcome in QUIET_OUTCOMES and not decision.figures:
        return
    if decision.outcome not in QUIET_OUTCOMES:
        metrics.cycle_seconds.observe(decision.seconds)
    if "champion" in decision.figures:  # evaluated offline, then fine-tuned
        metrics.fine_tunes.inc()
    for who, figs in decision.figures.items():
        for name, value in figs.items():
            if np.isfinite(value):
                metrics.shadow_score.labels(who, name).set(value)
    if decision.outcome == "promoted":
        metrics.promotions.inc()
    elif decision.outcome == "rejected":
        metrics.rejections.inc()
    elif decision.outcome == "rolled_back":
        metrics.rollbacks.inc()
    elif decision.outcome == "failed":
        metrics.failures.inc()


def run_forever(
    settings: Settings,
    stop: Any = None,
    on_decision: Any = None,
    metrics: UpdaterMetrics | None = None,
) -> None:
    """Poll the watermark every ``updater_poll_seconds``; run a cycle when it advanced.

    Serves ``/metrics``, ``/healthz`` and ``/readyz`` on ``updater_metrics_port`` (0: off);
    ready once the feature store answered and the registry has a champion."""
    from streams.observability.health import Readiness, serve

    cycle = Cycle(settings)
    metrics = metrics if metrics is not None else UpdaterMetrics()
    polled: dict[str, Any] = {"ok": False, "why": "not polled yet"}
    readiness = Readiness()
    readiness.add("feature store", lambda: (polled["ok"], polled["why"]))
    readiness.add("champion", lambda: (cycle.registry.champion() is not None, "registry"))
    server = serve(
        metrics.registry,
        readiness,
        settings.updater_metrics_port,
        settings.metrics_host,
        on_ready=lambda ok: metrics.ready.labels(metrics.process).set(int(ok)),
    )
    last: datetime | None = None
    try:
        while stop is None or not stop.is_set():
            try:
                at = cycle.event_time()
            except Exception as exc:  # Redis away: not ready, try again next poll
                polled.update(ok=False, why=f"{type(exc).__name__}")
                log.warning("updater: reading the watermark failed: %s", type(exc).__name__)
                at = None
            else:
                polled.update(ok=True, why="watermark read")
            if at is not None:
                metrics.event_time.set(at.timestamp())
            if at is not None and (last is None or at > last):
                try:
                    decision = cycle.run()
                except UpdaterError as exc:
                    log.warning("updater cycle skipped: %s", exc)
                else:
                    last = at
                    record_metrics(metrics, decision)
                    log.info(
                        "updater decision: %s (%s)",
                        decision.outcome,
                        decision.reason,
                        extra={"version": decision.candidate or decision.champion},
                    )
                    if on_decision is not None:
                        on_decision(decision)
            if stop is not None:
                stop.wait(settings.updater_poll_seconds)
            else:
                time.sleep(settings.updater_poll_seconds)
    finally:
        if server is not None:
            server.stop()


__all__ = [
    "Cycle",
    "CycleOptions",
    "Decision",
    "record_metrics",
    "run_forever",
    "run_once",
    "training_cut",
]
