"""The updater's live stages on the real Kafka + Redis, with the forecast worker running:
a candidate that passed offline forecasts in shadow on ``forecasts.shadow``; the live
decision promotes it and the forecast worker picks it up without missing a window; on
probation it falls behind the champion it replaced and is rolled back."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from models.registry import ModelRegistry
from models.shadow import ShadowPointer
from schemas import Forecast, ModelUpdate, WindowClosed, decode
from streams.history.replay import replay
from streams.kafka.admin import ensure_topics
from streams.settings import Settings
from updater.audit import AuditLog
from updater.cycle import Cycle, CycleOptions
from updater.evaluation import Verdict

from ..forecast.test_forecast_worker import _drained
from ..live import consume_all, forecast_worker, running_worker, stats, wait_for
from .test_updater_cycle import _champion, uci_weeks, updater_settings

pytestmark = pytest.mark.integration

__all__ = ["uci_weeks"]  # the fixture

A, B, C = (datetime(2010, 12, d, tzinfo=UTC) for d in (8, 13, 30))


def test_a_challenger_forecasts_in_shadow_is_promoted_live_and_rolled_back_on_probation(
    isolated: Settings, uci_weeks: Path, tmp_path: Path
) -> None:
    s = updater_settings(
        isolated,
        tmp_path / "models",
        forecast_max_pending_windows=10_000,
        updater_steps=60,
        updater_shadow_days=2,
        updater_probation_days=5,
    )
    ensure_topics(s, [s.topic_model_updates, s.topic_forecasts_shadow])
    registry = ModelRegistry(s.model_registry)
    shadows = ShadowPointer(registry.root)
    log = tmp_path / "worker.log"
    produced = 0

    def play(start: datetime | None, end: datetime | None, what: str) -> None:
        nonlocal produced
        produced += replay(
            s, uci_weeks, "uci", start=start, end=end, progress=False
        ).events_produced
        wait_for(lambda: _drained(s, fw, produced), 180, what, proc, log)

    with running_worker(s, log) as proc:
        produced = replay(s, uci_weeks, "uci", end=A, progress=False).events_produced

        def applied() -> bool:
            st = stats(s)
            return sum(st.get(k, 0) for k in ("events", "duplicates", "dead_letters")) >= produced

        wait_for(applied, 120, "the first week in Redis", proc, log)
        v1 = registry.register(_champion(s, A), {"training_data": {"end": "2010-12-07"}})
        with forecast_worker(s) as fw:
            wait_for(lambda: _drained(s, fw, produced), 180, "the first week", proc, log)
            cycle = Cycle(s, registry=registry)
            with pytest.MonkeyPatch.context() as mp:  # a bad candidate let through offline
                mp.setattr("updater.cycle.decide", lambda *_, **__: Verdict(True, "let through"))
                offline = cycle.run(CycleOptions(force="schedule", shuffle_targets=True))
            assert offline.outcome == "challenger", offline.reason
            v2 = offline.candidate
            assert v2 is not None and registry.champion() == v1
            shadow = shadows.get()
            assert shadow is not None and (shadow.version, shadow.role) == (v2, "challenger")
            wait_for(lambda: fw.shadow.current is not None, 60, "the challenger loaded")

            play(A, B, "the challenger's days")
            assert fw.stats.shadow_forecasts > 0
            with pytest.MonkeyPatch.context() as mp:  # promoted live, whatever its figures
                mp.setattr("updater.live.decide", lambda *_, **__: Verdict(True, "let through"))
                live = cycle.run()
            assert live.outcome == "promoted", live.reason
            assert {"champion_live", "challenger_live", "candidate_offline"} <= set(live.figures)
            assert registry.champion() == v2
            probation = shadows.get()
            assert probation is not None and (probation.version, probation.role) == (
                v1,
                "probation",
            )
            wait_for(lambda: fw.holder.current.version == v2, 60, "the hot reload of v2")
            wait_for(
                lambda: fw.shadow.current is not None and fw.shadow.current.version == v1,
                60,
                "v1 in shadow",
            )

            play(B, C, "the probation days")
            back = cycle.run()  # v2 was trained on shuffled targets: behind v1 live
            assert back.outcome == "rolled_back", back.reason
            assert back.figures["champion_live"]["wql"] > back.figures["previous_live"]["wql"]
            assert registry.champion() == v1 and shadows.get() is None
            wait_for(lambda: fw.holder.current.version == v1, 60, "the hot reload of v1")
            assert cycle.run().outcome in ("challenger", "rejected")  # a new round starts clean

    updates = [decode(ModelUpdate, m.value()) for m in consume_all(s, s.topic_model_updates)]
    updates.sort(key=lambda u: u.created_at)  # keyed by version: across partitions
    assert [(u.action, u.version, u.stage) for u in updates[:3]] == [
        ("candidate", v2, "offline"),
        ("promote", v2, "live"),
        ("rollback", v1, "probation"),
    ]
    assert updates[1].triggers == ["schedule"] and updates[1].data is not None
    assert updates[1].figures["challenger_live"]["wql"] > 0
    outcomes = [r["outcome"] for r in AuditLog(registry.root).records()]
    assert outcomes[:3] == ["challenger", "promoted", "rolled_back"]

    # no window missed across both switches, and the shadow never reached `forecasts`
    closed = [decode(WindowClosed, m.value()) for m in consume_all(s, s.topic_windows_closed)]
    expected = {(w.window.end, sku) for w in closed for sku in w.skus}
    served = [decode(Forecast, m.value()) for m in consume_all(s, s.topic_forecasts)]
    got = Counter((f.window.end, f.sku) for f in served)
    assert set(got) == expected and max(got.values()) == 1
    by_version = Counter(f.model_version for f in served)
    assert by_version[v1] > 0 and by_version[v2] > 0
    shadowed = [decode(Forecast, m.value()) for m in consume_all(s, s.topic_forecasts_shadow)]
    assert {f.model_version for f in shadowed} == {v1, v2}
    assert {(f.window.end, f.sku) for f in shadowed} <= expected
    served_by = {(f.window.end, f.sku): f.model_version for f in served}
    assert all(served_by[(f.window.end, f.sku)] != f.model_version for f in shadowed)
