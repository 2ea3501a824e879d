"""The restock bench's policies, calibration and pricing count on a synthetic replay whose
forecasts are exact (every quantile the day's demand): known answers throughout."""

from __future__ import annotations

import numpy as np

from streams.bench.restock import (
    Replay,
    calibration,
    empirical_policy,
    model_policy,
    pricing_alerts,
)
from streams.history.simulate import ReplenishmentRules, simulate_replenishment

LEVELS = [0.1, 0.5, 0.9]


def exact_replay(days: int = 28, rate: float = 2.0, n: int = 3) -> Replay:
    before = 60
    history = np.full((n, before + days), rate)
    quantiles = np.full((days, n, 28, len(LEVELS)), rate, dtype=np.float32)
    return Replay(
        skus=[f"s{i}" for i in range(n)],
        demand=history[:, before:],
        history=history,
        start=before,
        quantiles=quantiles,
        levels=LEVELS,
        rho=0.35,
        version="test",
        first_day="2011-09-01",
    )


def test_exact_forecasts_order_about_a_review_period_of_demand_and_are_never_short() -> None:
    # 2/day, lead 7, review 7: demand over lead time + a day is 16; the undershoot of a
    # 2-unit step is 2·V (V uniform), whose 0.9 quantile with it gives the reorder point
    # 16 + 1.8 = 17.8; order-up-to 2 * 14 = 28. From 28 on hand the position is 16 < 17.8 at
    # the start of day 6, 12, 18 and 24: orders of 12 arriving on days 13, 19 and 25 with
    # 2 units left (the allowance for an undershoot costs deterministic demand a day).
    replay = exact_replay()
    decide = model_policy(replay, 7, 7, 0.9, "model")
    res = simulate_replenishment(
        replay.demand, np.full(3, 28.0), decide, ReplenishmentRules(lead_time_days=7)
    )
    s = res.summary()
    assert s["orders"] == 3 * 4 and res.arrivals == [[13, 19, 25]] * 3
    assert s["fill_rate"] == 1.0 and s["stockout_days"] == 0 and s["service_level"] == 1.0
    assert res.on_hand[:, 12].tolist() == [2.0] * 3  # the day before the first arrival
    assert s["alerts"] == 12  # one per order


def test_exact_forecasts_cover_every_total_and_raise_no_pricing_alert() -> None:
    replay = exact_replay()
    cal = calibration(replay)
    assert set(cal["model"]) == {"7", "14", "28"}
    assert all(v == 1.0 for k in cal["model"].values() for v in k.values())
    counts = pricing_alerts(replay, 3)
    assert counts["totals_rule_per_sku_month"] == 0.0
    assert counts["days_in_a_row_rule_per_sku_month"] == 0.0


def test_the_history_baseline_on_steady_history_orders_like_the_exact_model() -> None:
    # 2 units every day before and during the replay: past 8-day totals are all 16, the
    # step 2, so the baseline's reorder point and order-up-to level are the model's
    replay = exact_replay()
    res = simulate_replenishment(
        replay.demand,
        np.full(3, 28.0),
        empirical_policy(replay, 7, 7, 0.9),
        ReplenishmentRules(lead_time_days=7),
    )
    assert res.arrivals == [[13, 19, 25]] * 3
    assert res.summary()["stockout_days"] == 0
