"""The chaos workload and vocabulary, without a broker."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from demandcast.cli_chaos import SCENARIO_NAMES
from schemas import OrderEvent, SchemaError, decode
from streams.chaos.observe import reason_kind
from streams.chaos.scenarios import FIELDS, SCENARIOS
from streams.chaos.workload import MALFORMED_KINDS, OVERSIZED_BYTES, chunks, malformed_messages
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
