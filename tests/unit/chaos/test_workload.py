"""The chaos workload and vocabulary, without a broker."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from demandcast.cli_chaos import SCENARIO_NAMES
from schemas import OrderEvent, SchemaError, decode
from streams.chaos.observe import reason_kind
from streams.chaos.scenarios import FIELDS, SCENARIOS
from streams.chaos.workload import (
    MALFORMED_KINDS,
    OVERSIZED_BYTES,
    chunks,
    late_interleaved,
    malformed_messages,
)
from streams.store.keys import epoch_ms

from ..streams.helpers import order


def _events(n: int) -> list[tuple[int, OrderEvent]]:
    out = []
    for i in range(n):
        e = order(f"e{i}", i, sku=f"S{i % 7}", qty=1 + i % 5)
        out.append((epoch_ms(e.event_time), e))
    return out


def test_the_cli_offers_exactly_the_scenarios_built() -> None:
    assert tuple(SCENARIOS) == SCENARIO_NAMES
    assert FIELDS[0] == "name" and len(FIELDS) == 12


def test_every_malformed_message_is_rejected_by_the_contract() -> None:
    bad = malformed_messages(_events(300), 1000, random.Random(3), oversized=4)  # type: ignore[arg-type]
    assert len(bad) == 1000
    kinds = Counter(m.kind for m in bad)
    assert set(kinds) == set(MALFORMED_KINDS) and kinds["oversized"] == 4
    assert all(len(m.value) > OVERSIZED_BYTES - 10 for m in bad if m.kind == "oversized")
    for m in bad:
        with pytest.raises((SchemaError, ValueError)):
            decode(OrderEvent, m.value)
    assert any(b"NaN" in m.value for m in bad if m.kind == "nan")


def test_chunks_cover_the_events_in_order() -> None:
    events = _events(103)
    parts = chunks(events, 10)  # type: ignore[arg-type]
    assert [x for p in parts for x in p] == events and len(parts) == 10


def test_late_events_are_the_slices_own_held_back_past_its_middle() -> None:
    events = _events(1000)  # one a minute apart
    out, held = late_interleaved(events, 40, random.Random(5))  # type: ignore[arg-type]
    assert sorted(out, key=lambda e: e[1].event_id) == sorted(events, key=lambda e: e[1].event_id)
    assert len(held) == 40 and len({e[1].event_id for e in held}) == 40
    position = {e[1].event_id: i for i, e in enumerate(out)}
    newest_before = 0
    for i, (t, _) in enumerate(out):
        if any(out[i] is h for h in held):
            assert t <= events[99][0] and i >= 460  # from the first tenth, past the middle
            assert newest_before - t > 5 * 3_600_000  # hours newer events arrived before it
        else:
            newest_before = max(newest_before, t)
    assert [position[e[1].event_id] for e in held] == sorted(position[e[1].event_id] for e in held)
    others = [e for e in out if all(e is not h for h in held)]
    assert others == sorted(others, key=lambda e: e[0])


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("invalid OrderEvent: <message>: 1052672 bytes exceeds 1048576", "oversized"),
        ("invalid OrderEvent: <message>: Invalid JSON: EOF while parsing", "invalid_json"),
        ("invalid OrderEvent: quantity: Input should be a valid integer", "contract_violation"),
        ("empty message (null value)", "null_value"),
    ],
)
def test_reason_kinds(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind
