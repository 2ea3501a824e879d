"""The soak's pure parts: the event-time shift of each loop and the growth-per-hour fit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas import OrderEvent
from streams.chaos.soak import DAY_MS, growth_per_hour, loop_span_ms, shifted
from streams.store.keys import epoch_ms

from ..streams.helpers import order


def _events() -> list:
    out = []
    for i in range(5):
        e = order(f"e{i}", i * 60, sku=f"S{i % 2}", qty=1 + i)
        out.append((epoch_ms(e.event_time), e))
    return out


def test_each_loop_moves_the_slice_by_whole_days_with_new_ids() -> None:
    events = _events()
    span = loop_span_ms(events)
    assert span == DAY_MS  # four hours of events: one day
    assert shifted(events, 0, span) == events
    second = shifted(events, 2, span)
    assert [t for t, _ in second] == [t + 2 * DAY_MS for t, _ in events]
    for (_, a), (t, b) in zip(events, second, strict=True):
        assert b.event_time == a.event_time + timedelta(days=2)
        assert epoch_ms(b.event_time) == t
        assert b.event_id == f"{a.event_id}~2" and b.event_id != a.event_id
        assert isinstance(a, OrderEvent) and isinstance(b, OrderEvent)
        assert (b.sku, b.quantity) == (a.sku, a.quantity)
    ids = {e.event_id for _, e in events} | {e.event_id for _, e in shifted(events, 1, span)}
    assert len(ids) == 2 * len(events), "a loop's events are new events, not duplicates"


def test_loop_span_rounds_up_to_days() -> None:
    events = _events()
    long = [events[0], (events[0][0] + DAY_MS + 1, events[-1][1])]
    assert loop_span_ms(long) == 2 * DAY_MS
    assert loop_span_ms([]) == DAY_MS


def test_growth_per_hour_is_the_least_squares_slope() -> None:
    # 2 MB a minute with noise that cancels: 120 MB an hour
    samples: list[tuple[float, float | None]] = [
        (60.0 * i, 100 + 2 * i + (0.5 if i % 2 else -0.5)) for i in range(11)
    ]
    assert growth_per_hour(samples) == pytest.approx(120.0, rel=0.01)
    assert growth_per_hour([(0.0, 5.0), (10.0, 5.0), (20.0, 5.0)]) == 0.0
    assert growth_per_hour([(0.0, 5.0), (10.0, None), (3600.0, 1.0)]) == pytest.approx(-4.0)
    assert growth_per_hour([(0.0, 1.0)]) is None
    assert growth_per_hour([(5.0, 1.0), (5.0, 2.0)]) is None


def test_soak_runs_alone() -> None:
    from typer.testing import CliRunner

    from demandcast.cli import app

    done = CliRunner().invoke(app, ["chaos", "soak", "worker-kill"])
    assert done.exit_code != 0
    assert "soak runs alone" in done.output
