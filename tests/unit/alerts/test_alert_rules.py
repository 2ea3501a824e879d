"""Restock and pricing alert rules, on hand-checkable numbers."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from streams.alerts.rules import (
    MAX_COVER_DAYS,
    Deviation,
    OpenRestock,
    assess_restock,
    days_until,
    demand_over,
    demand_over_many,
    lift_off_plan,
    persistent_deviation,
    quantile_column,
    restock_transition,
)

LEVELS = [0.1, 0.5, 0.9]


def _flat(low: float, mid: float, high: float, horizon: int = 28) -> np.ndarray:
    return np.tile([low, mid, high], (horizon, 1))


def test_quantile_column_interpolates_and_clamps() -> None:
    values = np.array([1.0, 2.0, 4.0])
    assert float(values @ quantile_column(LEVELS, 0.9)) == 4.0
    assert float(values @ quantile_column(LEVELS, 0.7)) == pytest.approx(3.0)
    assert float(values @ quantile_column(LEVELS, 0.95)) == 4.0
    assert float(values @ quantile_column(LEVELS, 0.05)) == 1.0


def test_demand_over_counts_fractions_and_extends_past_the_horizon() -> None:
    daily = np.array([1.0, 2.0, 3.0])
    assert demand_over(daily, 2) == 3.0
    assert demand_over(daily, 2.5) == 4.5
    assert demand_over(daily, 5) == 6.0 + 2 * 2.0
    assert demand_over(daily, 0) == 0.0


def test_demand_over_many_is_demand_over_row_by_row() -> None:
    daily = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0], [2.0, 2.0, 2.0]])
    days = np.array([2.5, 1.0, 7.25])
    assert demand_over_many(daily, days).tolist() == [4.5, 0.0, 14.5]
    assert demand_over_many(daily, np.array([3.0, 3.0, 0.0])).tolist() == [6.0, 4.0, 0.0]


def test_days_until_stock_runs_out() -> None:
    daily = np.array([2.0, 2.0, 2.0, 2.0])
    assert days_until(daily, 5.0) == pytest.approx(2.5)
    assert days_until(daily, 12.0) == pytest.approx(6.0)  # past the horizon at the mean
    assert days_until(np.zeros(4), 5.0) == MAX_COVER_DAYS
    assert days_until(daily, 0.0) == 0.0


def test_restock_fires_when_stock_is_below_demand_over_lead_time() -> None:
    # 0.9 quantile is 10/day; lead 5 + review 2 = 7 days -> 70 units needed; mean 5/day.
    values = _flat(0.0, 5.0, 10.0)
    low = assess_restock(
        values,
        LEVELS,
        on_hand=30,
        on_order=10,
        lead_time_days=5,
        review_period_days=2,
        service_level=0.9,
        first_day=date(2011, 6, 1),
        policy="sum_of_daily_quantiles",
    )
    assert low.needs_restock
    assert low.demand_over_lead_time == pytest.approx(70.0)
    assert low.recommended_order_qty == 30
    assert low.days_of_cover == pytest.approx(6.0)  # 30 on hand at a mean of 5/day
    assert low.expected_stockout_date == date(2011, 6, 7)
    ok = assess_restock(
        values,
        LEVELS,
        on_hand=60,
        on_order=20,
        lead_time_days=5,
        review_period_days=2,
        service_level=0.9,
        first_day=date(2011, 6, 1),
        policy="sum_of_daily_quantiles",
    )
    assert not ok.needs_restock and ok.recommended_order_qty == 0


def test_days_of_cover_follow_the_mean_when_the_median_is_zero() -> None:
    intermittent = _flat(0.0, 0.0, 9.0)  # sells on a few days only: median 0, mean 3
    a = assess_restock(
        intermittent,
        LEVELS,
        on_hand=30,
        on_order=0,
        lead_time_days=5,
        review_period_days=2,
        service_level=0.9,
        first_day=date(2011, 6, 1),
        policy="sum_of_daily_quantiles",
    )
    assert a.days_of_cover == pytest.approx(10.0)
    assert a.expected_stockout_date == date(2011, 6, 11)


def test_restock_alert_opens_once_repeats_on_change_and_resolves() -> None:
    values = _flat(0.0, 5.0, 10.0)
    kwargs = dict(
        lead_time_days=5,
        review_period_days=2,
        service_level=0.9,
        first_day=date(2011, 6, 1),
        policy="sum_of_daily_quantiles",
    )
    short = assess_restock(values, LEVELS, on_hand=30, on_order=10, **kwargs)  # type: ignore[arg-type]
    assert restock_transition(None, short) == "open"
    published = OpenRestock(short.recommended_order_qty, short.expected_stockout_date)
    assert restock_transition(published, short) is None
    drift = assess_restock(values, LEVELS, on_hand=25, on_order=10, **kwargs)  # type: ignore[arg-type]
    assert drift.expected_stockout_date != short.expected_stockout_date
    assert restock_transition(published, drift) is None  # a few units and a day: not news
    worse = assess_restock(values, LEVELS, on_hand=10, on_order=0, **kwargs)  # type: ignore[arg-type]
    assert restock_transition(published, worse) == "open"
    fine = assess_restock(values, LEVELS, on_hand=500, on_order=0, **kwargs)  # type: ignore[arg-type]
    assert restock_transition(published, fine) == "resolved"
    assert restock_transition(None, fine) is None


def test_persistent_deviation_needs_every_window_on_one_side() -> None:
    above = Deviation(observed=20, lower=1, median=5, upper=10)
    below = Deviation(observed=0, lower=1, median=5, upper=10)
    inside = Deviation(observed=6, lower=1, median=5, upper=10)
    assert persistent_deviation([inside, above, above, above], 3) == "surge"
    assert persistent_deviation([above, below, below, below], 3) == "slump"
    assert persistent_deviation([above, above, inside], 3) is None
    assert persistent_deviation([above, above], 3) is None


def test_promotion_lift_off_plan() -> None:
    assert lift_off_plan(observed=150, baseline=100, expected_lift=0.5) is None
    assert lift_off_plan(observed=100, baseline=100, expected_lift=0.5) == pytest.approx(0.0)
    assert lift_off_plan(observed=300, baseline=100, expected_lift=0.5) == pytest.approx(2.0)
    assert lift_off_plan(observed=10, baseline=0, expected_lift=0.5) is None
