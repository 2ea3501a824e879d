"""Simulated inventory for logs that have none (the UCI order log): SIMULATED, not real data.

Every simulated SKU starts with a stated number of days of cover, sells down with the real
orders of the log, and is replenished by a plain reorder-point policy: when stock on hand
plus on order falls below the mean demand over lead time plus review period, an order for
``order_days`` of mean demand is placed and arrives ``lead_time_days`` later. Each change
becomes an :class:`~schemas.InventoryEvent` one second after the order that caused it, so
the events interleave with the orders in event time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas import InventoryEvent, OrderEvent
from streams.store.keys import DAY_MS


@dataclass(frozen=True)
class InventoryPolicy:
    """The stated assumptions of the simulation."""

    cover_days: float = 14.0
    """Days of mean demand on hand at the start."""
    lead_time_days: float = 7.0
    review_days: float = 7.0
    order_days: float = 21.0
    """Days of mean demand ordered at each reorder."""


@dataclass
class _Stock:
    on_hand: int
    on_order: int
    arrivals: list[tuple[int, int]]  # (arrival time ms, quantity)


def simulate_inventory(
    orders: Iterable[tuple[int, OrderEvent]],
    daily_demand: Mapping[str, float],
    policy: InventoryPolicy,
    start_ms: int,
) -> list[tuple[int, InventoryEvent]]:
    """Inventory events for the SKUs in ``daily_demand``, driven by ``orders`` (time order).

    ``daily_demand`` is each SKU's mean daily units before the simulation starts; the
    opening stock is ``cover_days`` of it, stated at ``start_ms``. Sales beyond stock on
    hand are lost (stock never goes negative); cancellations do not return stock.
    """
    stocks: dict[str, _Stock] = {}
    events: list[tuple[int, InventoryEvent]] = []

    def emit(sku: str, t: int, stock: _Stock) -> None:
        events.append(
            (
                t,
                InventoryEvent(
                    event_id=f"sim-inv:{sku}:{t}:{len(events)}",
                    event_time=t,
                    sku=sku,
                    on_hand=stock.on_hand,
                    on_order=stock.on_order,
                    lead_time_days=policy.lead_time_days,
                ),
            )
        )

    for sku, demand in sorted(daily_demand.items()):
        opening = _Stock(on_hand=math.ceil(policy.cover_days * demand), on_order=0, arrivals=[])
        stocks[sku] = opening
        emit(sku, start_ms, opening)

    for t, order in orders:
        stock = stocks.get(order.sku)
        if stock is None or order.quantity <= 0:
            continue
        while stock.arrivals and stock.arrivals[0][0] <= t:
            arrival_t, qty = stock.arrivals.pop(0)
            stock.on_hand += qty
            stock.on_order -= qty
            emit(order.sku, arrival_t, stock)
        stock.on_hand = max(0, stock.on_hand - order.quantity)
        demand = daily_demand[order.sku]
        reorder_point = demand * (policy.lead_time_days + policy.review_days)
        if stock.on_hand + stock.on_order < reorder_point and demand > 0:
            qty = max(1, math.ceil(policy.order_days * demand))
            stock.on_order += qty
            stock.arrivals.append((t + int(policy.lead_time_days * DAY_MS), qty))
        emit(order.sku, t + 1000, stock)
    events.sort(key=lambda pair: pair[0])
    return events
