"""Simulated inventory for logs that have none (the UCI order log): SIMULATED, not real data.

Every simulated SKU starts with a stated number of days of cover, sells down with the real
orders of the log, and is replenished by a plain reorder-point policy: when stock on hand
plus on order falls below the mean demand over lead time plus review period, an order for
``order_days`` of mean demand is placed and arrives ``lead_time_days`` later. Each change
becomes an :class:`~schemas.InventoryEvent` one second after the order that caused it, so
the events interleave with the orders in event time.

:func:`simulate_replenishment` is the decision benchmark's simulation (``demandcast bench
restock``): daily stock of many SKUs at once, ordered as the restock rules recommend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from schemas import InventoryEvent, OrderEvent
from streams.alerts.rules import RestockArrays, material_change
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


# --- replenishment driven by restock decisions (the decision benchmark) -------------------


Decide = Callable[[int, np.ndarray, np.ndarray], RestockArrays]
"""``decide(day, on_hand, on_order)``: the restock assessment of every SKU at the start of
``day`` (before its demand), from what was known before it."""


@dataclass(frozen=True)
class ReplenishmentRules:
    """The stated assumptions of the decision simulation (SIMULATED stock)."""

    lead_time_days: int = 7
    """An order placed at the start of day ``t`` is on hand from the start of ``t + lead``
    (at least 1)."""
    repeat_change: float = 0.25
    repeat_days: int = 3


@dataclass
class ReplenishmentResult:
    """Daily stock of a decision simulation, ``(N, D)`` arrays, and its counts."""

    on_hand: np.ndarray
    """End-of-day stock on hand."""
    demand: np.ndarray
    sold: np.ndarray
    orders: int
    alerts: int
    """Restock alerts published: opened, plus open ones published again on a material
    change (:func:`streams.alerts.rules.material_change`); resolutions not counted."""
    rules: ReplenishmentRules
    arrivals: list[list[int]]
    """Per SKU, the days orders arrived (within the simulated days)."""

    def cycle_stockouts(self, *, warmup: bool = True) -> list[bool]:
        """Whether each replenishment cycle had a stock-out. A SKU's cycle ends when an order
        arrives and starts at the previous arrival (or day 0): a stock-out in it means that
        order came too late. The open cycle after the last arrival counts only if it already
        had a stock-out (a failure its replenishment cannot undo). ``warmup=False`` leaves
        out the warm-up cycle: the first one when its order was placed on day 0, which
        measures the opening stock (below the reorder point from the start), not a decision
        the policy could have made earlier."""
        lost = self.demand - self.sold > 1e-9
        lead = int(self.rules.lead_time_days)
        out: list[bool] = []
        for i in range(lost.shape[0]):
            start = 0
            for arrival in self.arrivals[i]:
                if warmup or start > 0 or arrival > lead:
                    out.append(bool(lost[i, start:arrival].any()))
                start = arrival
            if lost[i, start:].any():
                out.append(True)
        return out

    def summary(self) -> dict[str, float | int]:
        """Cycle service level (after the warm-up cycle; with it too), fill rate, average
        stock (units and days of mean demand), stock-out days (SKU-days with demand left
        unmet), orders, alerts per SKU per month."""
        n, days = self.demand.shape
        cycles = np.asarray(self.cycle_stockouts(warmup=False), dtype=bool)
        every = np.asarray(self.cycle_stockouts(), dtype=bool)
        total = float(self.demand.sum())
        mean_daily = total / (n * days) if n and days else 0.0
        avg_units = float(self.on_hand.mean()) if self.on_hand.size else 0.0
        months = days / 30.4375
        return {
            "service_level": float(1.0 - cycles.mean()) if cycles.size else float("nan"),
            "cycles": int(cycles.size),
            "service_level_with_warmup": float(1.0 - every.mean()) if every.size else float("nan"),
            "fill_rate": float(self.sold.sum()) / total if total > 0 else float("nan"),
            "avg_on_hand_units": avg_units,
            "avg_on_hand_days": avg_units / mean_daily if mean_daily > 0 else float("nan"),
            "stockout_days": int((self.demand - self.sold > 1e-9).sum()),
            "orders": self.orders,
            "alerts": self.alerts,
            "alerts_per_sku_month": self.alerts / (n * months) if n and months else 0.0,
        }


def simulate_replenishment(
    demand: np.ndarray, opening: np.ndarray, decide: Decide, rules: ReplenishmentRules
) -> ReplenishmentResult:
    """Simulated stock of ``N`` SKUs over ``D`` days of real ``demand`` ``(N, D)``, ordered
    as the restock decisions recommend: SIMULATED, the logs have no stock.

    Each day: arrivals due that day join stock on hand; ``decide`` assesses every SKU; the
    alert memory opens, repeats (material change) or resolves its alert as the forecast
    worker's does; every SKU that needs a restock orders the recommended quantity (the
    planner acts on the alert), arriving ``lead_time_days`` later; then the day's demand
    sells from stock, and what stock cannot meet is lost. (The review period is in the
    decisions: the order-up-to level covers it.)
    """
    demand = np.clip(np.asarray(demand, dtype=float), 0.0, None)
    n, days = demand.shape
    lead = int(rules.lead_time_days)
    if lead < 1:
        raise ValueError(f"the simulation needs a lead time of at least 1 day, got {lead}")
    stock = np.asarray(opening, dtype=float).copy()
    on_order = np.zeros(n)
    arrivals = np.zeros((n, days + lead + 1))
    is_open = np.zeros(n, dtype=bool)
    open_qty = np.zeros(n, dtype=np.int64)
    open_day = np.full(n, -1, dtype=np.int64)
    on_hand = np.zeros((n, days))
    sold = np.zeros((n, days))
    orders = alerts = 0
    for t in range(days):
        stock += arrivals[:, t]
        on_order -= arrivals[:, t]
        a = decide(t, stock.copy(), on_order.copy())
        offset = a.stockout_offset()
        day = np.where(offset < 0, -1, t + offset)
        needs = np.asarray(a.needs_restock, dtype=bool)
        changed = material_change(
            open_qty,
            open_day,
            a.recommended_order_qty,
            day,
            change_ratio=rules.repeat_change,
            stockout_days=rules.repeat_days,
        )
        publish = needs & (~is_open | changed)
        alerts += int(publish.sum())
        open_qty = np.where(publish, a.recommended_order_qty, open_qty)
        open_day = np.where(publish, day, open_day)
        is_open = needs
        qty = np.where(needs, a.recommended_order_qty, 0).astype(float)
        orders += int((qty > 0).sum())
        arrivals[:, t + lead] += qty
        on_order += qty
        sold[:, t] = np.minimum(stock, demand[:, t])
        stock -= sold[:, t]
        on_hand[:, t] = stock
    arrived = [np.flatnonzero(arrivals[i, :days] > 0).tolist() for i in range(n)]
    return ReplenishmentResult(on_hand, demand, sold, orders, alerts, rules, arrived)
