"""Metric formulas against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from models import metrics
from models.backtest import origins_for, score
from models.exceptions import InputError

LEVELS = [0.1, 0.5, 0.9]


def test_seasonal_naive_scale_and_mase() -> None:
    history = np.array([[1.0, 2, 3, 4, 1, 2, 3, 5]])
    scale = metrics.seasonal_naive_scale(history, season=4)
    # |1-1| + |2-2| + |3-3| + |5-4| over 4 pairs
    assert scale.tolist() == [0.25]
    y = np.array([[1.0, 2, 0]])
    point = np.array([[2.0, 2, 1]])
    # MAE 2/3 divided by 0.25
    assert metrics.mase(y, point, scale)[0] == pytest.approx(8 / 3)


def test_scale_ignores_unobserved_and_falls_back_to_lag_one() -> None:
    history = np.array([[0.0, 0, 0, 5, 7, 6], [1.0, 3, 1, 3, 1, 3]])
    observed = np.array([[False, False, False, True, True, True], [True] * 6])
    scale = metrics.seasonal_naive_scale(history, season=4, observed=observed)
    # series 0: no lag-4 pair observed → lag 1: |7-5| + |6-7| over 2
    assert scale[0] == pytest.approx(1.5)
    # series 1: lag-4 pairs (1,1) and (3,3)
    assert scale[1] == 0.0
    assert np.isnan(metrics.mase(np.ones((2, 2)), np.zeros((2, 2)), scale)[1])


def test_wql_by_hand() -> None:
    y = np.array([[4.0, 0.0]])
    q = np.array([[[2.0, 3.0, 5.0], [1.0, 1.0, 2.0]]])
    # pinball sums per level: 0.1 → 0.2 + 0.9, 0.5 → 0.5 + 0.5, 0.9 → 0.1 + 0.2
    # WQL = mean(2 * [1.1, 1.0, 0.3] / 4) = mean(0.55, 0.5, 0.15)
    assert metrics.wql(y, q, LEVELS) == pytest.approx(0.4)
    np.testing.assert_allclose(metrics.quantile_loss_sum(y, q, LEVELS), [2.2, 2.0, 0.6])


def test_wql_of_a_point_forecast_equals_wape() -> None:
    rng = np.random.default_rng(0)
    y = rng.poisson(3.0, size=(4, 7)).astype(float)
    point = rng.poisson(3.0, size=(4, 7)).astype(float)
    q = np.repeat(point[..., None], 3, axis=-1)
    assert metrics.wql(y, q, LEVELS) == pytest.approx(metrics.wape(y, point))


def test_wape_bias_coverage_by_hand() -> None:
    y = np.array([[4.0, 0.0]])
    point = np.array([[3.0, 1.0]])
    assert metrics.wape(y, point) == pytest.approx(0.5)
    assert metrics.bias(y, point) == pytest.approx(0.0)
    assert metrics.bias(y, point * 0) == pytest.approx(-1.0)
    yy = np.array([[1.0, 5, 3, 10]])
    lo = np.array([[0.0, 0, 3, 0]])
    hi = np.array([[2.0, 4, 4, 9]])
    assert metrics.coverage(yy, lo, hi) == pytest.approx(0.5)


def test_nan_actuals_are_ignored() -> None:
    y = np.array([[4.0, np.nan]])
    point = np.array([[3.0, 100.0]])
    assert metrics.wape(y, point) == pytest.approx(0.25)
    assert metrics.coverage(y, point - 2, point + 2) == 1.0


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(InputError, match="differ in shape"):
        metrics.wape(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(InputError, match="quantiles must be"):
        metrics.wql(np.ones((2, 3)), np.ones((2, 3, 2)), LEVELS)


def test_score_picks_median_and_interval() -> None:
    y = np.array([[4.0, 0.0]])
    q = np.array([[[2.0, 3.0, 5.0], [1.0, 1.0, 2.0]]])
    s = score(y, q, LEVELS, np.array([0.5]))
    assert s["wape"] == pytest.approx(0.5)
    assert s["mase"] == pytest.approx(1.0 / 0.5)
    assert s["coverage80"] == pytest.approx(0.5)


def test_origins() -> None:
    assert origins_for(100, 7, 3) == [79, 86, 93]
    with pytest.raises(InputError, match="too short"):
        origins_for(20, 7, 3)
