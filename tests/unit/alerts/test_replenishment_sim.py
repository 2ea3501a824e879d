"""The decision benchmark's simulation (SIMULATED stock) on tiny cases worked by hand."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from streams.alerts.rules import MAX_COVER_DAYS, RestockArrays, restock_arrays
from streams.history.simulate import ReplenishmentRules, simulate_replenishment

Decide = Callable[[int, np.ndarray, np.ndarray], RestockArrays]


def reorder(point: float, up_to: float) -> Decide:
    """``decide`` of fixed levels: below ``point``, order up to ``up_to``; no stock-out date."""

    def decide(t: int, on_hand: np.ndarray, on_order: np.ndarray) -> RestockArrays:
        n = len(on_hand)
        return restock_arrays(
            np.full(n, up_to), np.full(n, point), on_hand + on_order, np.full(n, MAX_COVER_DAYS)
        )

    return decide


def test_steady_demand_orders_when_the_position_falls_below_the_reorder_point() -> None:
    # 1 unit a day, reorder point 3, up to 6, lead 1, 6 on hand: the position is 2 < 3 at
    # the start of days 4 and 8 -> orders of 4, on hand on days 5 and 9; never short.
    rules = ReplenishmentRules(lead_time_days=1)
    res = simulate_replenishment(np.ones((1, 10)), np.array([6.0]), reorder(3, 6), rules)
    assert res.on_hand[0].tolist() == [5, 4, 3, 2, 1, 4, 3, 2, 1, 4]
    assert res.arrivals == [[5, 9]]
    s = res.summary()
    assert s["orders"] == 2 and s["alerts"] == 2  # one alert per order, resolved by it
    assert s["cycles"] == 2 and s["service_level"] == 1.0  # cycles [0, 5) and [5, 9)
    assert s["fill_rate"] == 1.0 and s["stockout_days"] == 0
    assert s["avg_on_hand_units"] == pytest.approx(2.9)
    assert s["avg_on_hand_days"] == pytest.approx(2.9)


def test_a_spike_beyond_stock_is_a_lost_sale_and_a_cycle_with_a_stockout() -> None:
    # 4 units on day 2 against 3 on hand: 1 lost; the position 0 < 2 on day 3 orders 4,
    # on hand from day 5 (lead 2). Cycle [0, 5) had the stock-out.
    rules = ReplenishmentRules(lead_time_days=2)
    demand = np.array([[1.0, 0.0, 4.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    res = simulate_replenishment(demand, np.array([4.0]), reorder(2, 4), rules)
    assert res.on_hand[0].tolist() == [3, 3, 0, 0, 0, 3, 3, 3]
    s = res.summary()
    assert s["orders"] == 1
    assert s["cycles"] == 1 and s["service_level"] == 0.0
    assert s["fill_rate"] == pytest.approx(5 / 6)
    assert s["stockout_days"] == 1


def test_an_unchanged_recommendation_is_one_alert_however_long_it_stays_open() -> None:
    # the planner does not order (quantity 0 recommended would not be an order): model it
    # with an order-up-to level the position never reaches and a lead time past the run
    def decide(t: int, on_hand: np.ndarray, on_order: np.ndarray) -> RestockArrays:
        a = reorder(1000, 1100)(t, on_hand, on_order)
        return RestockArrays(
            order_up_to=a.order_up_to,
            position=a.position,
            needs_restock=a.needs_restock,
            recommended_order_qty=np.full(len(on_hand), 5),
            days_of_cover=a.days_of_cover,
        )

    rules = ReplenishmentRules(lead_time_days=40)
    res = simulate_replenishment(np.zeros((2, 30)), np.array([10.0, 10.0]), decide, rules)
    # orders of 5 every day (never arriving), one alert per SKU: the same 5, no stock-out date
    assert res.alerts == 2 and res.orders == 60
    assert res.summary()["alerts_per_sku_month"] == pytest.approx(1 / (30 / 30.4375))


def test_the_warm_up_cycle_of_an_opening_stock_below_the_reorder_point_is_reported_apart() -> None:
    # 2 a day, 1 on hand, reorder point 6, up to 10, lead 2: the position is below 6 on
    # day 0 (an order of 9 arriving on day 2) and the opening unit runs out on day 0; the
    # policy could not have ordered earlier, so that cycle counts only in the figure with
    # warm-up. Then 9 on day 2 -> 7, 5 < 6 on day 4 -> 5 arrive on day 6; never short.
    rules = ReplenishmentRules(lead_time_days=2)
    res = simulate_replenishment(np.full((1, 9), 2.0), np.array([1.0]), reorder(6, 10), rules)
    assert res.arrivals == [[2, 6]]
    s = res.summary()
    assert s["cycles"] == 1 and s["service_level"] == 1.0
    assert s["service_level_with_warmup"] == pytest.approx(0.5)
