"""One conformance suite for every Forecaster: the baselines and the transformer (both
backbones)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from models.baselines import (
    ExponentialSmoothing,
    Forecaster,
    MovingAverage,
    SeasonalEmpiricalQuantiles,
    SeasonalNaive,
    SeasonalNaiveBand,
    ZeroForecast,
)
from models.data import Panel
from models.exceptions import ModelError, NotFittedError

from .conftest import small_transformer

H = 7


def _transformer(backbone: str) -> Callable[[], Forecaster]:
    def make() -> Forecaster:
        return small_transformer(backbone, 15, static=["category"], batch_size=5)

    return make


FACTORIES: dict[str, Callable[[], Forecaster]] = {
    "seasonal_naive": lambda: SeasonalNaive(7),
    "seasonal_naive_band": lambda: SeasonalNaiveBand(7),
    "zero": lambda: ZeroForecast(7),
    "moving_average": lambda: MovingAverage(14, 7),
    "exp_smoothing": lambda: ExponentialSmoothing(7),
    "seasonal_quantiles": lambda: SeasonalEmpiricalQuantiles(7, 8),
    "transformer": _transformer("patch"),
    "transformer_gpt2": _transformer("gpt2"),
}


@pytest.fixture(params=sorted(FACTORIES))
def make(request: pytest.FixtureRequest) -> Callable[[], Forecaster]:
    return FACTORIES[request.param]


def _future(panel: Panel) -> dict[str, np.ndarray]:
    return {"price_rel": np.ones((panel.num_series, H))}


def test_is_a_forecaster(make: Callable[[], Forecaster]) -> None:
    f = make()
    assert isinstance(f, Forecaster)
    for level in (0.1, 0.5, 0.9):
        assert any(abs(q - level) < 1e-9 for q in f.quantile_levels)


def test_predict_before_fit_is_an_error(make: Callable[[], Forecaster], panel: Panel) -> None:
    with pytest.raises(NotFittedError):
        make().predict(panel, H, _future(panel))


def test_quantiles_shape_non_negative_monotone(
    make: Callable[[], Forecaster], panel: Panel
) -> None:
    f = make()
    assert f.fit(panel) is f
    q = f.predict(panel, H, _future(panel))
    assert q.shape == (panel.num_series, H, len(f.quantile_levels))
    assert np.isfinite(q).all()
    assert (q >= 0).all()
    assert (np.diff(q, axis=-1) >= -1e-6).all()
    # new SKUs (4 days, 1 day of history) get a forecast too
    assert np.isfinite(q[:2]).all()


def test_deterministic(make: Callable[[], Forecaster], panel: Panel) -> None:
    a = make().fit(panel).predict(panel, H, _future(panel))
    b = make().fit(panel).predict(panel, H, _future(panel))
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_shorter_horizon(make: Callable[[], Forecaster], panel: Panel) -> None:
    f = make().fit(panel)
    q = f.predict(panel, 3, {"price_rel": np.ones((panel.num_series, 3))})
    assert q.shape[:2] == (panel.num_series, 3)


def test_history_shorter_than_the_residual_window(
    make: Callable[[], Forecaster], panel: Panel
) -> None:
    """A table shorter than the baselines' residual window (8 seasons: 56 days here, 416
    weeks for weekly data with season 52) still gets forecasts."""
    short = panel.slice(0, 30)
    f = make().fit(short)
    q = f.predict(short, H, _future(panel))
    assert q.shape == (panel.num_series, H, len(f.quantile_levels))
    assert np.isfinite(q).all()
    assert (q >= 0).all()


def test_empty_history_is_an_error(make: Callable[[], Forecaster], panel: Panel) -> None:
    f = make().fit(panel)
    with pytest.raises(ModelError):
        f.predict(panel.slice(0, 0), H, {"price_rel": np.ones((panel.num_series, H))})


def test_nan_history_is_an_error(make: Callable[[], Forecaster], panel: Panel) -> None:
    f = make().fit(panel)
    bad = panel.slice(0, panel.length)
    bad.target = bad.target.copy()
    bad.target[3, -2] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        f.predict(bad, H, _future(panel))


def test_seasonal_baselines_follow_the_week(panel: Panel) -> None:
    """On a strictly weekly series the seasonal baselines forecast the week exactly."""
    week = np.array([5.0, 3, 2, 4, 6, 0, 1])
    p = Panel(["a"], panel.index, "D", np.tile(week, 10)[None, :], np.ones((1, 70), bool))
    for f in (SeasonalNaive(7), SeasonalNaiveBand(7), SeasonalEmpiricalQuantiles(7, 8)):
        q = f.fit(p).predict(p, 14)
        start = 70 % 7
        expected = np.tile(np.roll(week, -start), 2)
        np.testing.assert_allclose(q[0, :, len(f.quantile_levels) // 2], expected)


def test_seasonal_naive_reference_is_a_point_forecast(panel: Panel) -> None:
    """The skill reference puts every quantile on the seasonal-naive value (WQL = WAPE);
    the band variant has the same median but a spread; the zero forecast is all zeros."""
    from models import metrics

    hist = panel.slice(0, panel.length - H)
    actual = panel.target[:, panel.length - H :]
    point = SeasonalNaive(7).fit(hist).predict(hist, H)
    assert (point == point[..., :1]).all()
    expected = np.where(hist.observed, hist.target, 0.0)[:, -7:][:, np.arange(H) % 7]
    np.testing.assert_allclose(point[..., 0], np.clip(expected, 0, None))
    levels = SeasonalNaive(7).quantile_levels
    assert metrics.wql(actual, point, levels) == pytest.approx(metrics.wape(actual, point[..., 0]))
    band = SeasonalNaiveBand(7).fit(hist).predict(hist, H)
    assert (band[..., -1] - band[..., 0]).max() > 0
    zero = ZeroForecast(7).fit(hist).predict(hist, H)
    assert zero.shape == point.shape and not zero.any()
    assert metrics.wql(actual, zero, levels) == pytest.approx(1.0)
