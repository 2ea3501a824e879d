"""Interval totals (models/intervals/): invariants, known answers, estimators, baseline."""

from __future__ import annotations

import math
import time
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.config import DEFAULT_QUANTILES
from models.exceptions import InputError
from models.intervals import (
    DEFAULT_DEPENDENCE,
    IntervalDependence,
    backtest_interval_metrics,
    demand_quantile_over,
    empirical_interval_quantiles,
    estimate_rho,
    fit_rho,
    interval_loss,
    interval_quantiles,
    interval_totals,
    pit_values,
    quantile_function,
    undershoot_draws,
)

LEVELS = list(DEFAULT_QUANTILES)
OUT = [0.5, 0.8, 0.9, 0.95]
ND = NormalDist()


def random_forecast(seed: int, n: int = 6, h: int = 14, zeros: float = 0.5) -> np.ndarray:
    """Non-negative, non-crossing daily quantiles; some days intermittent (low levels 0)."""
    rng = np.random.default_rng(seed)
    q = np.sort(rng.gamma(0.7, 3.0, size=(n, h, len(LEVELS))), axis=-1)
    cut = rng.integers(0, len(LEVELS), size=(n, h))
    low = (np.arange(len(LEVELS)) < cut[..., None]) & (rng.random((n, h, 1)) < zeros)
    return np.where(low, 0.0, q)


def normal_days(mu: np.ndarray, sigma: float) -> tuple[np.ndarray, list[float]]:
    """Days ``Normal(mu_d, sigma)`` as quantiles on a fine grid: ``(1, H, 199)``."""
    levels = [round(0.005 * i, 3) for i in range(1, 200)]
    z = np.array([ND.inv_cdf(p) for p in levels])
    return (mu[:, None] + sigma * z[None, :])[None], levels


# --- invariants -------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rho=st.floats(0.0, 1.0),
    kind=st.sampled_from(["equicorrelation", "ar1"]),
)
def test_monotone_non_negative_and_exact_for_one_day(seed: int, rho: float, kind: str) -> None:
    q = random_forecast(seed)
    ks = [14, 1, 3, 7, 2]  # unsorted on purpose
    levels_out = [0.95, 0.1, 0.5, 0.9, 0.05, 0.8]
    out = interval_quantiles(q, LEVELS, ks, levels_out, rho, kind)  # type: ignore[arg-type]
    assert out.shape == (6, 5, 6)
    assert (out >= 0).all()
    by_k = out[:, np.argsort(ks)][:, :, np.argsort(levels_out)]
    assert (np.diff(by_k, axis=1) >= -1e-9).all(), "not non-decreasing in k"
    assert (np.diff(by_k, axis=2) >= -1e-9).all(), "not non-decreasing in level"
    # k = 1 is the day's own quantile function: the forecast itself at its levels
    np.testing.assert_allclose(out[:, 1, 1], q[:, 0, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out[:, 1, 2], q[:, 0, 4], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out[:, 1, 3], q[:, 0, 8], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        out[:, 1, :], quantile_function(q[:, 0], LEVELS, levels_out), rtol=1e-12, atol=1e-12
    )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), rho=st.floats(0.0, 1.0))
def test_deterministic_days_total_is_the_sum(seed: int, rho: float) -> None:
    rng = np.random.default_rng(seed)
    c = rng.gamma(1.0, 5.0, size=(4, 10)) * (rng.random((4, 10)) < 0.7)
    q = np.repeat(c[..., None], len(LEVELS), axis=2)
    out = interval_quantiles(q, LEVELS, [1, 4, 10], OUT, rho)
    want = np.cumsum(c, axis=1)[:, [0, 3, 9]]
    np.testing.assert_allclose(out, np.repeat(want[..., None], len(OUT), axis=2), rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_comonotone_is_the_sum_of_daily_quantiles(seed: int) -> None:
    q = random_forecast(seed)
    out = interval_quantiles(q, LEVELS, [1, 5, 14], [0.1, 0.5, 0.9], rho=1.0)
    cum = np.cumsum(q[:, :, [0, 4, 8]], axis=1)[:, [0, 4, 13]]
    np.testing.assert_allclose(out, cum, rtol=1e-12)
    # beyond the highest level: the sum of each day's tail value, not a clamp at 0.9
    tail = interval_quantiles(q, LEVELS, [14], [0.95], rho=1.0)[:, 0, 0]
    np.testing.assert_allclose(tail, quantile_function(q, LEVELS, [0.95])[..., 0].sum(axis=1))
    assert (tail >= cum[:, 2, 2]).all()
    # and the sampled copula converges to it as rho -> 1: M = 512 draws resolve levels to
    # about 1/M, so the result lies between the sums at tau -+ 2/M
    near = interval_quantiles(q, LEVELS, [5, 14], [0.5, 0.9], rho=0.99999)
    for j, tau in enumerate((0.5, 0.9)):
        lo, hi = (
            np.cumsum(quantile_function(q, LEVELS, [tau + d / 512])[..., 0], axis=1)[:, [4, 13]]
            for d in (-2, 2)
        )
        assert (near[:, :, j] >= lo - 1e-6).all() and (near[:, :, j] <= hi + 1e-6).all()


def test_deterministic_across_calls_and_batches() -> None:
    q = random_forecast(3, n=40)
    a = interval_quantiles(q, LEVELS, [7, 14], OUT, 0.4)
    b = interval_quantiles(q, LEVELS, [7, 14], OUT, 0.4)
    c = interval_quantiles(q[5:9], LEVELS, [14, 7], OUT, 0.4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a[5:9], c[:, ::-1], rtol=1e-12)  # same draws for every series


# --- known answers ----------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.7])
@pytest.mark.parametrize("k", [2, 14, 28])
def test_equicorrelated_normal_days_sum_to_the_known_normal(rho: float, k: int) -> None:
    mu = np.linspace(60.0, 140.0, 28)
    q, levels = normal_days(mu, 10.0)
    out = interval_quantiles(q, levels, [k], [0.5, 0.8, 0.9, 0.95], rho)[0, 0]
    sd = 10.0 * math.sqrt(k + k * (k - 1) * rho)
    want = mu[:k].sum() + sd * np.array([ND.inv_cdf(t) for t in (0.5, 0.8, 0.9, 0.95)])
    np.testing.assert_allclose(out, want, atol=0.15 * sd)


@pytest.mark.parametrize("rho", [0.3, 0.8])
def test_ar1_normal_days_sum_to_the_known_normal(rho: float) -> None:
    k = 14
    q, levels = normal_days(np.full(k, 100.0), 10.0)
    out = interval_quantiles(q, levels, [k], [0.5, 0.9], rho, "ar1")[0, 0]
    lags = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
    sd = 10.0 * math.sqrt(float((rho**lags).sum()))
    want = 100.0 * k + sd * np.array([0.0, ND.inv_cdf(0.9)])
    np.testing.assert_allclose(out, want, atol=0.15 * sd)
    # an equicorrelation of the same rho is a different (wider) law
    equi = interval_quantiles(q, levels, [k], [0.9], rho)[0, 0, 0]
    assert equi - 100.0 * k > 1.15 * (out[1] - 100.0 * k)


def test_two_independent_uniform_days_give_the_triangular_law() -> None:
    levels = [round(0.005 * i, 3) for i in range(1, 200)]
    q = np.tile(np.array(levels), (1, 2, 1))  # U(0, 1) each day
    taus = [0.1, 0.3, 0.5, 0.7, 0.9, 0.95]
    out = interval_quantiles(q, levels, [2], taus, 0.0, num_samples=2048)[0, 0]
    want = [math.sqrt(2 * t) if t <= 0.5 else 2 - math.sqrt(2 * (1 - t)) for t in taus]
    np.testing.assert_allclose(out, want, atol=0.02)


def test_point_mass_at_zero_multiplies_for_independent_days() -> None:
    # P(day = 0) = 0.7: quantiles 0 up to 0.7, 10 at 0.8 and 0.9
    day = np.array([0, 0, 0, 0, 0, 0, 0, 10.0, 10.0])
    q = np.tile(day, (1, 2, 1))
    indep = interval_quantiles(q, LEVELS, [2], [0.45, 0.55], 0.0)[0, 0]
    assert indep[0] == 0.0 and indep[1] > 0.0  # P(total = 0) = 0.49
    como = interval_quantiles(q, LEVELS, [2], [0.65, 0.72], 1.0)[0, 0]
    assert como[0] == 0.0 and como[1] > 0.0  # P(total = 0) = 0.7


def test_intermittent_total_is_far_below_the_sum_of_daily_quantiles() -> None:
    # sells on ~25% of days: daily 0.9 quantile 8, the 14-day sum rule says 112
    day = np.array([0, 0, 0, 0, 0, 0, 0, 6.0, 8.0])
    q = np.tile(day, (1, 14, 1))
    summed = interval_quantiles(q, LEVELS, [14], [0.9], 1.0)[0, 0, 0]
    dependent = interval_quantiles(q, LEVELS, [14], [0.9], 0.35)[0, 0, 0]
    indep = interval_quantiles(q, LEVELS, [14], [0.9], 0.0)[0, 0, 0]
    assert summed == pytest.approx(112.0)
    assert 0.0 < indep < summed / 2
    assert indep < dependent < summed


# --- the restock helper -----------------------------------------------------------------


def test_demand_quantile_over_days() -> None:
    q = random_forecast(11, n=5, h=10)
    days = np.array([0.0, 1.0, 4.0, 4.5, 10.0])
    got = demand_quantile_over(q, LEVELS, days, 0.9, 0.35)
    table = interval_quantiles(q, LEVELS, [1, 4, 5, 10], [0.9], 0.35)[:, :, 0]
    assert got[0] == 0.0
    assert got[1] == pytest.approx(q[1, 0, 8])
    assert got[2] == pytest.approx(table[2, 1])
    assert got[3] == pytest.approx(0.5 * (table[3, 1] + table[3, 2]))
    assert got[4] == pytest.approx(table[4, 3])
    # beyond the horizon: deterministic days continue at their mean
    c = np.tile(np.arange(1.0, 5.0)[None, :, None], (2, 1, len(LEVELS)))  # 1, 2, 3, 4
    far = demand_quantile_over(c, LEVELS, [6.0, 5.5], 0.9, 0.0)
    np.testing.assert_allclose(far, [10.0 + 2 * 2.5, 10.0 + 1.5 * 2.5])
    # rho = 1 is today's rule: the daily 0.9 quantiles summed, fractional days pro rata
    summed = demand_quantile_over(q, LEVELS, days, 0.9, 1.0)
    daily = q[:, :, 8]
    np.testing.assert_allclose(summed[2], daily[2, :4].sum())
    np.testing.assert_allclose(summed[3], daily[3, :4].sum() + 0.5 * daily[3, 4])
    with pytest.raises(InputError):
        demand_quantile_over(q, LEVELS, [1.0, 2.0], 0.9)


# --- PIT and dependence estimates -------------------------------------------------------


def test_pit_values() -> None:
    q = np.array([[[1, 2, 3, 4, 5, 6, 7, 8, 9.0], [0, 0, 0, 1, 2, 3, 4, 5, 6.0]]])
    y = np.array([[4.0, 0.0]])
    pit = pit_values(q, LEVELS, y, seed=1)
    assert pit[0, 0] == pytest.approx(0.4)  # continuous: F(q_j) = l_j
    assert 0.0 <= pit[0, 1] <= 0.3  # a zero under a point mass of 0.3 at 0
    many = pit_values(np.repeat(q, 4000, axis=0), LEVELS, np.repeat(y, 4000, axis=0))
    assert many[:, 1].mean() == pytest.approx(0.15, abs=0.01)  # uniform within the atom
    assert pit_values(q, LEVELS, np.array([[0.5, np.nan]]))[0, 0] == 0.0
    assert np.isnan(pit_values(q, LEVELS, np.array([[0.5, np.nan]]))[0, 1])
    # above 0.9 the exponential tail: scale (9 - 8) / log(0.2 / 0.1), so Q(0.95) = 10
    top = pit_values(q, LEVELS, np.array([[10.0, 99.0]]))[0]
    assert top[0] == pytest.approx(0.95)
    assert quantile_function(q[0, 0], LEVELS, [0.95])[0] == pytest.approx(10.0)
    assert 0.999 < top[1] <= 1.0


@pytest.mark.parametrize("kind", ["equicorrelation", "ar1"])
def test_estimate_rho_recovers_a_gaussian_copula(kind: str) -> None:
    rng = np.random.default_rng(0)
    rho, n, k = 0.5, 6000, 10
    if kind == "equicorrelation":
        z = math.sqrt(rho) * rng.standard_normal((n, 1)) + math.sqrt(1 - rho) * (
            rng.standard_normal((n, k))
        )
    else:
        z = np.empty((n, k))
        z[:, 0] = rng.standard_normal(n)
        for d in range(1, k):
            z[:, d] = rho * z[:, d - 1] + math.sqrt(1 - rho**2) * rng.standard_normal(n)
    pit = np.vectorize(ND.cdf)(z)
    assert estimate_rho(pit, kind) == pytest.approx(rho, abs=0.04)  # type: ignore[arg-type]
    assert estimate_rho(np.vectorize(ND.cdf)(rng.standard_normal((n, k)))) < 0.03


def simulate_demand(q: np.ndarray, rho: float, seed: int) -> np.ndarray:
    """Demand drawn from the forecast ``q`` itself, days joined by an equicorrelated
    Gaussian copula with ``rho``: ``(N, H)``."""
    rng = np.random.default_rng(seed)
    n, h, _ = q.shape
    z = math.sqrt(rho) * rng.standard_normal((n, 1)) + math.sqrt(1 - rho) * (
        rng.standard_normal((n, h))
    )
    u = np.clip(np.vectorize(ND.cdf)(z), 0.0, 1 - 1e-12)
    rows = np.arange(n)
    return np.stack(
        [quantile_function(q[:, d], LEVELS, u[:, d])[rows, rows] for d in range(h)], axis=1
    )


def test_fit_rho_recovers_the_dependence_of_simulated_demand() -> None:
    q = random_forecast(7, n=1500, h=14, zeros=0.3)
    actual = simulate_demand(q, 0.6, seed=5)
    got = fit_rho(q, LEVELS, actual, (7, 14), OUT, grid=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert got == 0.6


def test_backtest_interval_metrics_fits_early_and_scores_late() -> None:
    qs = [random_forecast(20 + w, n=400, h=14, zeros=0.3) for w in range(4)]
    ys = [simulate_demand(q, 0.5, seed=w) for w, q in enumerate(qs)]
    ys[3][0, 0] = np.nan  # an unobserved day drops that path's totals only
    rep = backtest_interval_metrics(qs, ys, LEVELS, ks=(7, 14, 28))
    assert (rep["fit_windows"], rep["scored_windows"], rep["in_sample"]) == (2, 2, False)
    assert abs(rep["rho"] - 0.5) <= 0.15
    assert set(rep["totals"]) == {"7", "14"}  # 28 > horizon: dropped
    for k in ("7", "14"):
        cov = rep["totals"][k]["coverage"]
        assert abs(cov["0.9"] - 0.9) < 0.04 and abs(cov["0.5"] - 0.5) < 0.06
        assert rep["sum_of_daily"][k]["coverage"]["0.9"] > cov["0.9"] + 0.02
        assert rep["totals"][k]["wql"] < rep["sum_of_daily"][k]["wql"]
    # rho fitted on the first two windows only: changing the scored ones does not move it
    other = backtest_interval_metrics(qs[:2] + qs[:2], ys[:2] + ys[:2], LEVELS, ks=(7, 14))
    assert other["rho"] == rep["rho"]
    one = backtest_interval_metrics(qs[:1], ys[:1], LEVELS, ks=(7,))
    assert one["in_sample"] and one["scored_windows"] == 1
    with pytest.raises(InputError):
        backtest_interval_metrics(qs, ys[:2], LEVELS)


def test_interval_loss_and_totals() -> None:
    actual = np.array([[1.0, 2.0, np.nan], [0.0, 4.0, 1.0]])
    tot = interval_totals(actual, [1, 2, 3])
    np.testing.assert_array_equal(tot[1], [0.0, 4.0, 5.0])
    assert np.isnan(tot[0, 2])
    perfect = np.repeat(tot[..., None], 2, axis=2)
    assert interval_loss(np.nan_to_num(perfect), tot, [0.5, 0.9]) == 0.0
    assert interval_loss(np.zeros((2, 3, 2)), tot, [0.5, 0.9]) == pytest.approx(1.4)


# --- history baseline -------------------------------------------------------------------


def test_empirical_totals_known_answers() -> None:
    alt = np.tile([0.0, 1.0], 30)[None, :]  # 0, 1, 0, 1, ...
    out = empirical_interval_quantiles(alt, [1, 2, 7], [0.5, 0.9], lookback=20)[0]
    np.testing.assert_allclose(out[0], [0.5, 1.0])
    np.testing.assert_allclose(out[1], [1.0, 1.0])  # every 2-day total is 1
    np.testing.assert_allclose(out[2], [3.5, 4.0])  # 7-day totals are 3 or 4
    flat = empirical_interval_quantiles(np.full((2, 40), 3.0), [5, 14], OUT)
    np.testing.assert_allclose(flat, np.array([15.0, 42.0])[None, :, None] * np.ones((2, 2, 4)))
    # only the last `lookback` days count
    shift = np.concatenate([np.full(50, 100.0), np.full(30, 1.0)])[None, :]
    np.testing.assert_allclose(empirical_interval_quantiles(shift, [7], [0.9], 20), [[[7.0]]])


def test_empirical_totals_unobserved_days() -> None:
    x = np.array([[0, 0, 0, 0, 2.0, 4.0], [9, 9, 9, 9, 9, 9.0]])
    obs = np.array([[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]], dtype=bool)
    out = empirical_interval_quantiles(x, [2, 3], [0.5], observed=obs)
    assert out[0, 0, 0] == 6.0  # the one complete 2-day window
    assert out[0, 1, 0] == 9.0  # no 3-day window: 3 × the daily median
    assert (out[1] == 0).all()  # nothing observed


# --- validation, parameter, speed -------------------------------------------------------


def test_rejects_bad_inputs() -> None:
    q = random_forecast(1)
    with pytest.raises(InputError):
        interval_quantiles(q, LEVELS, [15], OUT)
    with pytest.raises(InputError):
        interval_quantiles(q, LEVELS, [0], OUT)
    with pytest.raises(InputError):
        interval_quantiles(q, LEVELS, [7], OUT, rho=1.5)
    with pytest.raises(InputError):
        interval_quantiles(q, LEVELS, [7], [1.0])
    with pytest.raises(InputError):
        interval_quantiles(q[..., :5], LEVELS, [7], OUT)
    with pytest.raises(InputError):
        interval_quantiles(q, LEVELS, [7], OUT, 0.3, "markov")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        interval_quantiles(np.where(q > 0, np.nan, q), LEVELS, [7], OUT)
    with pytest.raises(InputError):
        IntervalDependence(-0.1)


def test_dependence_parameter_round_trip() -> None:
    dep = IntervalDependence(0.35)
    assert IntervalDependence.from_dict(dep.as_dict()) == dep
    assert IntervalDependence.from_dict({"rho": 0.8, "kind": "ar1"}).kind == "ar1"
    assert IntervalDependence(0.35, "equicorrelation") == DEFAULT_DEPENDENCE


def test_fast_enough_for_the_forecast_worker() -> None:
    q = random_forecast(2, n=2048, h=28)
    interval_quantiles(q, LEVELS, [7, 14, 28], OUT, 0.35)  # builds the cached draws
    t0 = time.perf_counter()
    interval_quantiles(q, LEVELS, [7, 14, 28], OUT, 0.35)
    assert time.perf_counter() - t0 < 1.0  # ~50 ms on 2 cores; generous for shared CI


def test_the_undershoot_of_a_fixed_step_is_uniform_below_it() -> None:
    # every day exactly 4 units: the position passes the reorder point somewhere inside a
    # 4-unit step, so the undershoot is uniform on [0, 4): mean 2, 0.9 quantile 3.6
    q = np.full((1, 10, 3), 4.0)
    u = undershoot_draws(q, [0.1, 0.5, 0.9], np.array([7.0]))
    assert u.shape == (1, 512)
    assert u.mean() == pytest.approx(2.0, abs=1e-9)
    assert np.quantile(u, 0.9) == pytest.approx(3.6, abs=0.01)


def test_the_undershoot_of_lumpy_demand_is_half_its_size_biased_step() -> None:
    # a day sells 0 units (90% of the time) or 20 units (10%): E[X^2] / (2 E[X]) = 10 units,
    # five days of its mean demand of 2 a day; a steady seller of 2 a day undershoots by 1
    levels = [0.1, 0.5, 0.89, 0.91, 0.99]
    lumpy = np.tile(np.array([0.0, 0.0, 0.0, 20.0, 20.0]), (1, 14, 1))
    steady = np.full((1, 14, 5), 2.0)
    u = undershoot_draws(np.concatenate([lumpy, steady]), levels, np.array([7.0, 7.0]))
    assert u[0].mean() == pytest.approx(10.0, rel=0.05)
    assert u[1].mean() == pytest.approx(1.0, rel=1e-6)
    assert (undershoot_draws(np.zeros((1, 14, 5)), levels, np.array([7.0])) == 0).all()


def test_plus_draws_shift_the_quantile_of_the_total() -> None:
    # a constant added to every draw moves the quantile by that constant (for k >= 1 and
    # for 0 days, where the total is the added amount alone)
    q = np.tile(np.array([1.0, 3.0, 6.0]), (2, 14, 1))
    base = demand_quantile_over(q, [0.1, 0.5, 0.9], np.array([7.0, 3.5]), 0.9, 0.35)
    plus = demand_quantile_over(
        q, [0.1, 0.5, 0.9], np.array([7.0, 3.5]), 0.9, 0.35, plus=np.full((2, 512), 5.0)
    )
    assert plus == pytest.approx(base + 5.0, abs=1e-6)
    one = np.ones((1, 512))
    none = demand_quantile_over(q[:1], [0.1, 0.5, 0.9], np.array([0.0]), 0.9, plus=one)
    assert none == pytest.approx([1.0])
    with pytest.raises(InputError):
        demand_quantile_over(q, [0.1, 0.5, 0.9], np.array([7.0, 3.5]), 0.9, plus=np.ones((2, 3)))
