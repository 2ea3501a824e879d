"""Calibrated quantile levels (models/calibration.py) and their use in training/serving."""

from __future__ import annotations

from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.calibration import apply_levels, calibrated_levels, fit_levels, realised_levels
from models.exceptions import InputError
from models.metrics import coverage
from models.pipeline import TransformerForecaster
from models.synthetic import synthetic_panel

from .conftest import small_transformer

LEVELS = [round(0.1 * i, 1) for i in range(1, 10)]


def _normal_quantiles(n: int, h: int, sigma: float) -> np.ndarray:
    z = np.array([NormalDist().inv_cdf(level) for level in LEVELS])
    return np.broadcast_to(z * sigma, (n, h, len(LEVELS))).copy()


def test_realised_levels_by_hand() -> None:
    y = np.array([[0.0, 0.0, 1.0, 3.0]])
    q = np.broadcast_to(np.array([0.0, 1.0, 2.0]), (1, 4, 3))
    r = realised_levels(y, q, [0.1, 0.5, 0.9])
    # 0.1: share strictly below 0 = 0; 0.5: mean of (< 1: 0.5) and (<= 1: 0.75); 0.9: <= 2
    np.testing.assert_allclose(r, [0.0, 0.625, 0.75])
    with pytest.raises(InputError, match="do not match"):
        realised_levels(y, q[:, :2], [0.1, 0.5, 0.9])


def test_levels_that_are_right_are_left_alone() -> None:
    assert calibrated_levels(LEVELS, np.array(LEVELS)) == pytest.approx(LEVELS, abs=1e-6)


def test_too_wide_quantiles_are_read_further_in_and_then_cover_what_they_say() -> None:
    rng = np.random.default_rng(1)
    q = _normal_quantiles(400, 7, sigma=2.0)  # the truth is N(0, 1): far too wide
    fit = fit_levels(rng.standard_normal((400, 7)), q, LEVELS)
    assert fit is not None and fit[0] > 0.1 and fit[-1] < 0.9
    assert fit == sorted(fit)
    fresh = rng.standard_normal((400, 7))
    before = coverage(fresh, q[..., 0], q[..., -1])
    after = apply_levels(q, LEVELS, fit)
    assert before > 0.98
    assert coverage(fresh, after[..., 0], after[..., -1]) == pytest.approx(0.8, abs=0.03)


def test_too_few_points_leave_the_levels() -> None:
    q = _normal_quantiles(10, 7, sigma=1.0)
    assert fit_levels(np.zeros((10, 7)), q, LEVELS) is None


@given(
    st.lists(st.floats(0, 50, allow_nan=False), min_size=9, max_size=9),
    st.lists(st.floats(0, 1), min_size=9, max_size=9),
)
def test_read_quantiles_stay_monotone_and_non_negative(raw: list[float], real: list[float]) -> None:
    q = np.sort(np.array(raw))[None, None, :]
    read = calibrated_levels(LEVELS, np.array(real))
    out = apply_levels(q, LEVELS, read)
    assert read == sorted(read)
    assert (np.diff(out, axis=-1) >= 0).all() and (out >= 0).all()
    inside = np.clip(read, LEVELS[0], LEVELS[-1])  # read within the levels: within the range
    kept = apply_levels(q, LEVELS, list(inside))
    tol = 1e-12 * max(1.0, float(q.max()))  # interpolation rounding
    assert kept.min() >= q.min() - tol and kept.max() <= q.max() + tol
    np.testing.assert_allclose(apply_levels(q, LEVELS, LEVELS), q)


@given(
    st.lists(st.floats(0, 50, allow_nan=False), min_size=9, max_size=9),
    st.lists(st.floats(0.001, 0.999), min_size=9, max_size=9),
    st.floats(0.0, 1.0),
)
def test_widened_quantiles_stay_monotone_and_non_negative(
    raw: list[float], read: list[float], shrink: float
) -> None:
    """Levels read beyond 0.1 / 0.9 (an interval too narrow) come from the exponential
    tails: still non-crossing, never negative, and the tails only reach outwards."""
    q = np.sort(np.array(raw))[None, None, :]
    levels = calibrated_levels(LEVELS, np.sort(np.array(read)), shrink)
    assert levels == sorted(levels) and all(0.0 <= v <= 1.0 for v in levels)
    out = apply_levels(q, LEVELS, levels)
    assert (np.diff(out, axis=-1) >= 0).all() and (out >= 0).all()
    wide = apply_levels(q, LEVELS, [0.02, *LEVELS[1:-1], 0.98])
    assert wide[..., 0] <= q[..., 0] + 1e-9 and wide[..., -1] >= q[..., -1] - 1e-9
    assert (np.diff(wide, axis=-1) >= -1e-9).all() and (wide >= 0).all()


def test_too_narrow_quantiles_are_widened_by_the_tails() -> None:
    rng = np.random.default_rng(2)
    q = _normal_quantiles(600, 7, sigma=0.6) + 10.0  # the truth is N(10, 1): too narrow
    seen = rng.standard_normal((600, 7)) + 10.0
    fit = fit_levels(seen, q, LEVELS)
    assert fit is not None and fit[0] < 0.1 and fit[-1] > 0.9
    fresh = rng.standard_normal((600, 7)) + 10.0
    after = apply_levels(q, LEVELS, fit)
    before = coverage(fresh, q[..., 0], q[..., -1])
    widened = coverage(fresh, after[..., 0], after[..., -1])
    # the exponential tail is not the normal's: most, not all, of the way to 0.8
    assert before < 0.6 and before + 0.1 < widened < 0.85
    half_fit = fit_levels(seen, q, LEVELS, shrink=0.5)
    assert half_fit is not None
    half = apply_levels(q, LEVELS, half_fit)  # half the correction: a narrower widening
    assert (after[..., -1] - after[..., 0] >= half[..., -1] - half[..., 0] - 1e-9).all()


def test_training_fits_the_levels_and_they_travel_with_the_model(tmp_path: Path) -> None:
    panel = synthetic_panel(300, 90, seed=5)
    panel.known["price_rel"] = np.ones(panel.target.shape)
    f = small_transformer(steps=10)
    f.training.calibrate = True
    f = f.fit(panel, 7)
    read = f.config.read_levels
    assert read is not None and len(read) == len(f.quantile_levels) and read == sorted(read)
    future = {"price_rel": np.ones((300, 7))}
    q = f.predict(panel, 7, future)
    assert (np.diff(q, axis=-1) >= 0).all()
    f.save_pretrained(tmp_path / "m")
    again = TransformerForecaster.from_pretrained(tmp_path / "m", device="cpu")
    assert again.config.read_levels == read
    np.testing.assert_allclose(again.predict(panel, 7, future), q, rtol=1e-5, atol=1e-5)
    plain = small_transformer(steps=10)  # off by default
    assert plain.fit(panel, 7).config.read_levels is None
