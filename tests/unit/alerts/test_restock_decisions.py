"""Restock decisions on the interval distribution (issue 16): order-up-to level, quantity,
cover, stock-out date, repeat suppression; pricing on N-day totals."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from models.intervals import demand_quantile_over
from streams.alerts.rules import (
    MAX_COVER_DAYS,
    Deviation,
    OpenRestock,
    RestockAssessment,
    assess_restock,
    assess_restock_many,
    days_until_cumulative,
    material_change,
    order_intervals,
    persistent_deviation,
    restock_transition,
    total_deviation,
)

LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
DAY = date(2011, 9, 1)


def intermittent(n: int = 5, horizon: int = 28, seed: int = 0) -> np.ndarray:
    """Daily quantiles of intermittent demand: the low levels 0, then rising."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(1.0, 6.0, size=(n, 1, 1))
    ramp = np.clip(np.linspace(-0.6, 1.0, len(LEVELS)), 0.0, None)[None, None, :]
    return np.repeat(scale * ramp * 4.0, horizon, axis=1)


def assess(values: np.ndarray, **kw: object) -> RestockAssessment:
    args: dict[str, object] = dict(
        on_hand=10,
        on_order=0,
        lead_time_days=7,
        review_period_days=7,
        service_level=0.9,
        first_day=DAY,
        rho=0.35,
    )
    args.update(kw)
    return assess_restock(values, LEVELS, **args)  # type: ignore[arg-type]


def test_deterministic_days_give_exact_order_up_to_cover_and_stockout_date() -> None:
    # every quantile 5/day: demand over the lead time of 7 days plus the day to the next
    # look is exactly 40, plus the undershoot of a 5-unit step (5·V, V uniform: 4.5 at the
    # 0.9 level) the reorder point 44.5; over 7 + 7 days 70 (the order-up-to level), at any
    # rho
    values = np.full((28, len(LEVELS)), 5.0)
    a = assess(values, on_hand=30, on_order=4)
    assert a.demand_over_lead_time == pytest.approx(70.0)
    assert a.needs_restock and a.recommended_order_qty == 70 - 34
    assert a.days_of_cover == pytest.approx(6.0)  # 30 on hand at 5/day
    assert a.expected_stockout_date == date(2011, 9, 7)
    below = assess(values, on_hand=30, on_order=14)  # 44 < 44.5: an order
    assert below.needs_restock and below.recommended_order_qty == 70 - 44
    above = assess(values, on_hand=30, on_order=15)  # above the reorder point: not yet
    assert not above.needs_restock and above.recommended_order_qty == 25
    full = assess(values, on_hand=60, on_order=10)
    assert not full.needs_restock and full.recommended_order_qty == 0


def test_order_up_to_is_the_quantile_of_the_total_not_the_sum_of_daily_quantiles() -> None:
    q = intermittent()
    n = q.shape[0]
    kwargs = dict(
        on_hand=np.zeros(n),
        on_order=np.zeros(n),
        lead_time_days=np.full(n, 7.0),
        review_period_days=7.0,
        service_level=0.9,
        rho=0.35,
    )
    model = assess_restock_many(q, LEVELS, policy="model", **kwargs)  # type: ignore[arg-type]
    old = assess_restock_many(q, LEVELS, policy="sum_of_daily_quantiles", **kwargs)  # type: ignore[arg-type]
    expected = demand_quantile_over(q, LEVELS, np.full(n, 14.0), 0.9, 0.35)
    np.testing.assert_allclose(model.order_up_to, expected)
    np.testing.assert_allclose(old.order_up_to, 14 * q[:, 0, -1])
    assert (model.order_up_to < old.order_up_to).all()
    np.testing.assert_array_equal(model.recommended_order_qty, np.ceil(expected - 1e-9))
    # rho = 1 is the sum of the daily quantiles again
    comonotone = assess_restock_many(q, LEVELS, **{**kwargs, "rho": 1.0})  # type: ignore[arg-type]
    np.testing.assert_allclose(comonotone.order_up_to, old.order_up_to)


def test_order_intervals_follow_the_square_root_rule_between_their_bounds() -> None:
    # K/h = 100 unit-days: a SKU selling 2 a day orders every sqrt(2·100/2) = 10 days, one
    # selling 0.5 every 20, one selling 50 at the floor (7), none at all at the ceiling
    rate = np.array([2.0, 0.5, 50.0, 0.0, 0.01])
    out = order_intervals(rate, 7.0, 100.0, maximum=56.0)
    assert out.tolist() == pytest.approx([10.0, 20.0, 7.0, 56.0, 56.0])
    # halving demand lengthens the interval by sqrt(2); no order cost: the fixed period
    assert order_intervals(np.array([1.0]), 1.0, 100.0)[0] == pytest.approx(
        np.sqrt(2) * order_intervals(np.array([2.0]), 1.0, 100.0)[0]
    )
    assert order_intervals(rate, 7.0, 0.0).tolist() == [7.0] * 5


def test_an_order_cost_orders_slow_sellers_for_longer_and_reports_their_period() -> None:
    slow, fast = np.full((28, len(LEVELS)), 0.5), np.full((28, len(LEVELS)), 50.0)
    fixed = [assess(v, on_hand=0) for v in (slow, fast)]
    costed = [assess(v, on_hand=0, order_cost_unit_days=100.0) for v in (slow, fast)]
    # the slow seller's order covers 7 + 20 days instead of 7 + 7; the fast one's is unchanged
    assert costed[0].review_period_days == pytest.approx(20.0)
    assert costed[0].recommended_order_qty == 14 > fixed[0].recommended_order_qty == 7
    assert costed[1].review_period_days == pytest.approx(7.0)
    assert costed[1].recommended_order_qty == fixed[1].recommended_order_qty
    assert fixed[0].review_period_days == pytest.approx(7.0)


def test_decisions_are_monotone_in_the_service_level() -> None:
    q = intermittent(n=8, seed=3)
    n = q.shape[0]
    prev_s = prev_qty = None
    for level in (0.5, 0.7, 0.8, 0.9, 0.95, 0.99):
        a = assess_restock_many(
            q,
            LEVELS,
            on_hand=np.full(n, 5.0),
            on_order=np.full(n, 3.0),
            lead_time_days=np.full(n, 7.0),
            review_period_days=3.5,
            service_level=level,
            rho=0.35,
        )
        if prev_s is not None and prev_qty is not None:
            assert (a.order_up_to >= prev_s - 1e-9).all()
            assert (a.recommended_order_qty >= prev_qty).all()
        prev_s, prev_qty = a.order_up_to, a.recommended_order_qty


def test_cover_follows_the_median_of_cumulative_demand_even_when_daily_medians_are_zero() -> None:
    q = intermittent(n=1)
    zero_median = q.copy()
    zero_median[..., :5] = 0.0  # each day's median is 0: it would never run out day by day
    a = assess(zero_median[0], on_hand=20)
    assert 0 < a.days_of_cover < MAX_COVER_DAYS
    assert a.expected_stockout_date is not None
    more = assess(zero_median[0], on_hand=40)
    assert more.days_of_cover > a.days_of_cover
    nothing = assess(np.zeros((28, len(LEVELS))), on_hand=20)
    assert nothing.days_of_cover == MAX_COVER_DAYS and nothing.expected_stockout_date is None


def test_days_until_a_cumulative_curve_passes_stock() -> None:
    cum = np.array([[2.0, 4.0, 6.0, 8.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 5.0, 5.0]])
    got = days_until_cumulative(cum, np.array([5.0, 3.0, 3.0]))
    assert got[0] == pytest.approx(2.5)
    assert got[1] == MAX_COVER_DAYS
    assert got[2] == pytest.approx(2.5)  # 1 unit by day 2, 4 more on day 3: half-way
    beyond = days_until_cumulative(cum[:1], np.array([12.0]))
    assert beyond[0] == pytest.approx(6.0)  # past the horizon at the mean rate 2/day
    assert days_until_cumulative(cum[:1], np.array([0.0]))[0] == 0.0


def test_an_open_alert_repeats_only_on_a_material_change() -> None:
    assert not material_change(100, 20, 120, 21, change_ratio=0.25, stockout_days=3)
    assert material_change(100, 20, 125, 21, change_ratio=0.25, stockout_days=3)
    assert material_change(100, 20, 100, 23, change_ratio=0.25, stockout_days=3)
    assert material_change(100, 20, 100, 17, change_ratio=0.25, stockout_days=3)
    assert material_change(100, -1, 100, 20, change_ratio=0.25, stockout_days=3)
    assert not material_change(100, -1, 110, -1, change_ratio=0.25, stockout_days=3)
    values = np.full((28, len(LEVELS)), 5.0)
    first = assess(values, on_hand=30, on_order=0)  # below 40: order up to 70, stock-out day 6
    published = OpenRestock(first.recommended_order_qty, first.expected_stockout_date)
    assert restock_transition(None, first) == "open"
    drift = assess(values, on_hand=25, on_order=0)  # 45 units (+12.5%), a day earlier
    assert restock_transition(published, drift) is None
    sooner = assess(values, on_hand=15, on_order=10)  # 45 units, three days earlier
    assert restock_transition(published, sooner) == "open"
    assert restock_transition(published, sooner, stockout_days=4) is None
    bigger = assess(values, on_hand=30, lead_time_days=11)  # 60 units (+50%), same day
    assert bigger.expected_stockout_date == first.expected_stockout_date
    assert restock_transition(published, bigger) == "open"
    covered = assess(values, on_hand=30, on_order=40)
    assert restock_transition(published, covered) == "resolved"


def test_pricing_judges_the_total_of_the_block_against_the_interval_of_the_total() -> None:
    # each day inside its own 80% interval (1..6), but 3 days of 6 = 18 is above the
    # interval of the 3-day total (5..15): a surge on the total, none day by day
    days = [Deviation(6.0, 5.0, 9.0, 15.0), Deviation(6.0, 5.0, 9.0, 15.0)]
    days.append(Deviation(6.0, 5.0, 9.0, 15.0))
    assert total_deviation(days, 3) == "surge"
    daily = [Deviation(6.0, 1.0, 3.0, 6.5)] * 3
    assert persistent_deviation(daily, 3) is None
    low = [Deviation(1.0, 5.0, 9.0, 15.0)] * 3
    assert total_deviation(low, 3) == "slump"
    # one big day alone is not judged before the block is full; the block's first day
    # holds the interval the total is judged by
    assert total_deviation(days[:2], 3) is None
    inside = [Deviation(4.0, 5.0, 9.0, 15.0), Deviation(4.0, 0, 0, 0), Deviation(4.0, 0, 0, 0)]
    assert total_deviation(inside, 3) is None


def test_the_serving_model_carries_the_versions_rho() -> None:
    from models.intervals import DEFAULT_DEPENDENCE
    from streams.serving.model_holder import BASELINE_INTERVAL_RHO, baseline_model, interval_rho

    assert interval_rho({}) == DEFAULT_DEPENDENCE.rho
    stored = {"interval_dependence": {"rho": 0.2, "kind": "equicorrelation", "source": "fitted"}}
    assert interval_rho(stored) == 0.2
    assert baseline_model().interval_rho == BASELINE_INTERVAL_RHO
