"""The updater's metrics: one decision counted by outcome, trigger, fine-tune and figures."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.observability.metrics import UpdaterMetrics
from updater.cycle import Decision, record_metrics
from updater.triggers import Trigger

AT = datetime(2011, 12, 1, tzinfo=UTC)


def _value(metrics: UpdaterMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_promotion_and_a_rejection_are_counted() -> None:
    metrics = UpdaterMetrics()
    figures = {
        "champion": {"wql": 0.5, "mase": 1.1},
        "candidate": {"wql": 0.4, "mase": float("nan")},
    }
    promoted = Decision(
        "promoted", at=AT, triggers=[Trigger("holiday", "christmas", AT)], figures=figures
    )
    promoted.seconds = 12.0
    record_metrics(metrics, promoted)
    record_metrics(metrics, Decision("rejected", at=AT, triggers=[Trigger("drift", "x", AT)]))
    record_metrics(metrics, Decision("idle", at=AT))
    assert _value(metrics, "demandcast_updater_cycles_total", outcome="promoted") == 1
    assert _value(metrics, "demandcast_updater_cycles_total", outcome="idle") == 1
    assert _value(metrics, "demandcast_updater_triggers_total", kind="holiday") == 1
    assert _value(metrics, "demandcast_updater_triggers_total", kind="drift") == 1
    assert _value(metrics, "demandcast_updater_promotions_total") == 1
    assert _value(metrics, "demandcast_updater_rejections_total") == 1
    assert _value(metrics, "demandcast_updater_fine_tunes_total") == 1
    assert _value(metrics, "demandcast_updater_cycle_duration_seconds_count") == 2
    score = "demandcast_updater_shadow_score"
    assert _value(metrics, score, model="candidate", metric="wql") == 0.4
    assert (
        metrics.registry.get_sample_value(score, {"model": "candidate", "metric": "mase"}) is None
    )
