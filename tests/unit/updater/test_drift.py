from __future__ import annotations

import math

import numpy as np

from updater.drift import PageHinkley


def _first_alarm(values: np.ndarray, detector: PageHinkley) -> int | None:
    for i, x in enumerate(values):
        if detector.update(float(x)).drift_detected:
            return i
    return None


def test_detects_a_mean_shift_soon_after_it() -> None:
    rng = np.random.default_rng(7)
    stream = np.concatenate([rng.normal(0, 1, 500), rng.normal(2, 1, 500)])
    alarm = _first_alarm(stream, PageHinkley(delta=0.5, threshold=50))
    assert alarm is not None and 500 <= alarm < 560


def test_river_defaults_alarm_on_long_unit_noise() -> None:
    # delta 0.005 is tiny next to unit noise: why the updater's default delta is 0.5
    rng = np.random.default_rng(0)
    assert _first_alarm(rng.normal(0, 1, 5000), PageHinkley()) is not None


def test_silent_on_stationary_noise() -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        assert _first_alarm(rng.normal(0, 1, 5000), PageHinkley(delta=0.5, threshold=50)) is None


def test_restarts_after_an_alarm_and_skips_nan() -> None:
    d = PageHinkley(threshold=3, min_instances=1)
    d.update(math.nan)
    assert d.n == 0
    for x in [0.0] * 5 + [5.0]:
        d.update(x)
    assert d.drift_detected
    d.update(0.0)
    assert not d.drift_detected and d.n == 1


def test_min_instances_holds_the_alarm_back() -> None:
    d = PageHinkley(threshold=1, min_instances=10)
    for x in [0.0, 10.0, 10.0]:
        d.update(x)
    assert not d.drift_detected and d.statistic > 1
