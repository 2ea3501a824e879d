"""The stream processor's metrics, counted per batch (a memory sink, no broker)."""

from __future__ import annotations

from tests.unit.streams.helpers import order, processor, record, settings


def _value(proc: object, name: str, **labels: str) -> float:
    value = proc.metrics.registry.get_sample_value(name, labels)  # type: ignore[attr-defined]
    return 0.0 if value is None else float(value)


async def test_batches_count_consumed_applied_duplicates_late_dead_letters_windows() -> None:
    s = settings()
    proc, _sink, _emitted = processor(s)
    orders = s.topic_orders
    await proc.process(
        [
            record(s, order("a", 0), offset=0),
            record(s, order("b", 1), offset=1),
            record(s, b"not json", offset=2),
            record(s, None, offset=3),
        ]
    )
    assert _value(proc, "demandcast_events_consumed_total", topic=orders) == 4
    assert _value(proc, "demandcast_events_applied_total", topic=orders) == 2
    assert _value(proc, "demandcast_dead_letters_total", reason="schema") == 1
    assert _value(proc, "demandcast_dead_letters_total", reason="null_value") == 1
    assert _value(proc, "demandcast_store_script_duration_seconds_count") == 1
    # a redelivery, an event two hours later (closes the first window), then a late one
    await proc.process([record(s, order("a", 0), offset=4), record(s, order("c", 120), offset=5)])
    await proc.process([record(s, order("d", 2), offset=6)])
    assert _value(proc, "demandcast_events_duplicate_total", topic=orders) == 1
    assert _value(proc, "demandcast_events_late_total", topic=orders) == 1
    assert _value(proc, "demandcast_windows_closed_total") >= 1
    assert _value(proc, "demandcast_store_script_duration_seconds_count") == 3
