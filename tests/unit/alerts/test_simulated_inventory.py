"""The simulated inventory of the demo: sells down, reorders, receives, never negative."""

from __future__ import annotations

from schemas import OrderEvent
from streams.history.simulate import InventoryPolicy, simulate_inventory
from streams.store.keys import DAY_MS

T0 = 1_300_000_000_000


def _order(i: int, sku: str, qty: int, t: int) -> tuple[int, OrderEvent]:
    event = OrderEvent(
        event_id=f"o{i}", event_time=t, order_id=f"{i}", sku=sku, quantity=qty, unit_price=1.0
    )
    return t, event


def test_stock_sells_down_reorders_and_receives() -> None:
    policy = InventoryPolicy(cover_days=10, lead_time_days=2, review_days=1, order_days=5)
    orders = [_order(i, "A", 4, T0 + i * DAY_MS) for i in range(8)] + [_order(99, "B", 3, T0)]
    events = simulate_inventory(orders, {"A": 2.0}, policy, start_ms=T0 - 1000)
    a = [e for _, e in events if e.sku == "A"]
    assert a[0].on_hand == 20 and a[0].on_order == 0
    assert all(e.sku != "B" for _, e in events)  # only SKUs with a stated demand
    assert all(e.on_hand >= 0 for e in a)
    # 20 -> 16 -> 12 -> 8 -> 4 (below 2 * (2 + 1) = 6 with nothing on order: order 10)
    first_order = next(e for e in a if e.on_order > 0)
    assert first_order.on_hand == 4 and first_order.on_order == 10
    received = [e for e in a if e.on_order == 0 and e.on_hand > 0 and e is not a[0]]
    assert received, "the order arrives after the lead time"
    times = [t for t, _ in events]
    assert times == sorted(times)
    assert len({e.event_id for _, e in events}) == len(events)


def test_the_simulation_is_deterministic() -> None:
    policy = InventoryPolicy()
    orders = [_order(i, "A", 1 + i % 3, T0 + i * 3_600_000) for i in range(50)]
    once = simulate_inventory(orders, {"A": 5.0}, policy, start_ms=T0)
    twice = simulate_inventory(orders, {"A": 5.0}, policy, start_ms=T0)
    assert once == twice
