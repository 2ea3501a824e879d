"""Inputs by frequency: weekly data's year-back inputs (models/pipeline.py, models/modeling.py)
and the weekly calendar; a model saved without them still loads and forecasts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.config import DemandcastConfig
from models.data import Panel
from models.features import calendar_feature_names, calendar_features
from models.modeling import DemandcastForecaster
from models.pipeline import TrainingConfig, TransformerForecaster, year_back_window
from models.synthetic import synthetic_panel

from .conftest import TINY_MODEL


def _weekly_config(**kw: object) -> DemandcastConfig:
    base: dict[str, object] = {
        "context_length": 16,
        "prediction_length": 13,
        "patch_length": 4,
        "season_length": 52,
        "year_back_period": 52,
        "year_back_neighbours": 2,
        "freq": "W",
    }
    base.update(kw)
    return DemandcastConfig(**base)  # type: ignore[arg-type]


def _ordinal_panel(weeks: int, start: str = "2015-06-01") -> Panel:
    """Weekly series whose value is the Monday's day number: a value names its date."""
    index = pd.date_range(start, periods=weeks, freq="W-MON")
    days = np.asarray((index - pd.Timestamp("2000-01-03")).days, dtype=np.float32)
    target = np.stack([days, days + 0.5])
    return Panel(["a", "b"], index, "W", target, np.ones_like(target, bool), {}, {})


def _window(panel: Panel, cfg: DemandcastConfig, origin: int) -> tuple[np.ndarray, np.ndarray]:
    f = TransformerForecaster(cfg, device="cpu")
    L, H = cfg.context_length, cfg.prediction_length
    target, observed, _, _ = f._padded_arrays(panel, None, H)
    return year_back_window(target, observed, np.arange(2), np.full(2, L + origin), L, H, cfg)


def test_year_back_across_a_year_boundary() -> None:
    panel = _ordinal_panel(120)
    cfg = _weekly_config()
    origin = int(np.flatnonzero(panel.index == pd.Timestamp("2017-01-02"))[0])
    values, mask = _window(panel, cfg, origin)
    L, H = cfg.context_length, cfg.prediction_length
    assert values.shape == mask.shape == (2, L + H, 5)
    # the first horizon week (2017-01-02) sees 2016-01-04 (52 weeks = 364 days back) and
    # its neighbours, two of them in 2015: the same week last year across the year boundary
    day0 = (pd.Timestamp("2017-01-02") - pd.Timestamp("2000-01-03")).days
    want = [day0 - 364 + 7 * j for j in range(-2, 3)]
    np.testing.assert_array_equal(values[0, L], want)
    np.testing.assert_array_equal(values[1, L], np.array(want) + 0.5)
    assert (mask[:, L] == 1).all()
    dates = [pd.Timestamp("2000-01-03") + pd.Timedelta(days=int(v)) for v in values[0, L]]
    assert [d.year for d in dates] == [2015, 2015, 2016, 2016, 2016]
    # every step: the value Y + j weeks before it, context and horizon alike
    step_days = day0 + 7 * np.arange(-L, H)
    np.testing.assert_array_equal(
        values[0], step_days[:, None] - 364 + 7 * np.arange(-2, 3)[None, :]
    )


def test_short_series_has_its_year_back_masked_not_zero_observed() -> None:
    panel = _ordinal_panel(30)  # shorter than a year
    panel.observed[1, :10] = False  # and a gap: a value there must not leak as observed
    panel.target[1, :10] = 99.0
    cfg = _weekly_config()
    values, mask = _window(panel, cfg, 30)
    L = cfg.context_length
    # every step's year back lies before the table: unknown, masked, value 0
    assert values.shape[1] == L + cfg.prediction_length
    assert (mask == 0).all() and (values == 0).all()
    longer = _ordinal_panel(70)
    longer.observed[1, :10] = False
    longer.target[1, :10] = 99.0
    values, mask = _window(longer, cfg, 70)
    assert (mask[0] == 1).any()
    assert not (values[1] == 99.0).any()  # the unobserved weeks stay 0 and masked
    assert ((mask[1] == 0) | (values[1] > 0)).all()


def test_year_back_never_reads_the_future() -> None:
    # a tiny "year" of 4 periods: horizon steps 2+ would reach the origin or beyond
    panel = _ordinal_panel(60)
    cfg = _weekly_config(year_back_period=4, year_back_neighbours=1)
    f = TransformerForecaster(cfg, device="cpu")
    L, H = cfg.context_length, cfg.prediction_length
    target, observed, _, _ = f._padded_arrays(panel, None, H)
    cut = L + 40
    _, mask = year_back_window(target, observed, np.arange(2), np.full(2, cut), L, H, cfg)
    idx = cut + np.arange(-L, H)[:, None] - 4 + np.arange(-1, 2)[None, :]
    assert (mask[0][idx >= cut] == 0).all() and (mask[0][idx < cut] == 1).all()


def test_masked_year_back_differs_from_observed_zeros() -> None:
    cfg = _weekly_config(d_model=16, num_layers=1, num_heads=2, ffn_dim=32)
    torch.manual_seed(0)
    model = DemandcastForecaster(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    b, steps = 3, cfg.context_length + cfg.prediction_length
    x = {"past_values": torch.full((b, cfg.context_length), 5.0)}
    zeros = torch.zeros(b, steps, 5)
    with torch.inference_mode():
        unknown = model(**x, year_back=zeros, year_back_mask=zeros).quantiles
        none = model(**x).quantiles
        seen_zero = model(**x, year_back=zeros, year_back_mask=torch.ones_like(zeros)).quantiles
    assert unknown is not None and none is not None and seen_zero is not None
    torch.testing.assert_close(unknown, none)  # no tensor = every value unknown
    assert (unknown - seen_zero).abs().max() > 1e-4


def test_weekly_fit_picks_year_back_and_the_recent_weeks(tmp_path: Path) -> None:
    panel = synthetic_panel(16, 120, freq="W", seed=2)
    cfg = DemandcastConfig(context_length=16, patch_length=4, season_length=52, d_model=16)
    f = TransformerForecaster(cfg, TrainingConfig(steps=4, batch_size=16), device="cpu")
    f.fit(panel, 13)
    assert f.config.year_back_period == 52 and f.config.lag_period == 1
    assert f.config.effective_seasonal_lags == 8
    q = f.predict(panel, 13)
    assert q.shape == (16, 13, 9) and (np.diff(q, axis=-1) >= 0).all()
    f.save_pretrained(tmp_path / "w")
    again = TransformerForecaster.from_pretrained(tmp_path / "w", device="cpu")
    np.testing.assert_allclose(again.predict(panel, 13), q, rtol=1e-5, atol=1e-5)
    daily = TransformerForecaster(
        DemandcastConfig(context_length=14, patch_length=7, d_model=16),
        TrainingConfig(steps=2, batch_size=8),
        device="cpu",
    ).fit(synthetic_panel(6, 60, seed=1), 7)
    assert daily.config.year_back_period == 0 and daily.config.lag_period == 7


def test_a_model_saved_before_year_back_still_loads_and_forecasts(tmp_path: Path) -> None:
    # the committed checkpoint predates the year-back inputs: its config has no such keys
    keys = json.loads((TINY_MODEL / "config.json").read_text())
    assert "year_back_period" not in keys
    f = TransformerForecaster.from_pretrained(TINY_MODEL, device="cpu")
    assert f.config.year_back_width == 0 and f.config.lag_period == f.config.season_length
    # a weekly model saved without the new keys (as before): same forecasts after loading
    panel = synthetic_panel(5, 80, freq="W", seed=4)
    old = TransformerForecaster(
        DemandcastConfig(
            context_length=16, patch_length=4, season_length=52, d_model=16, year_back_period=0
        ),
        TrainingConfig(steps=2, batch_size=8),
        device="cpu",
    ).fit(panel, 13)
    q = old.predict(panel, 13)
    old.save_pretrained(tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    raw = json.loads(path.read_text())
    for key in ("year_back_period", "year_back_neighbours", "seasonal_lag_period"):
        raw.pop(key, None)
    path.write_text(json.dumps(raw))
    loaded = TransformerForecaster.from_pretrained(tmp_path / "old", device="cpu")
    assert loaded.config.year_back_period is None and loaded.config.year_back_width == 0
    np.testing.assert_allclose(loaded.predict(panel, 13), q, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("freq", ["D", "W", "H"])
def test_calendar_columns_match_their_names(freq: str) -> None:
    alias = {"D": "D", "W": "W-MON", "H": "h"}[freq]
    index = pd.date_range("2016-12-19", periods=60, freq=alias)
    cols = calendar_features(index, freq, "GB")
    assert cols.shape == (60, len(calendar_feature_names(freq)))


def test_weekly_holidays_fall_in_their_week() -> None:
    index = pd.date_range("2016-12-19", periods=4, freq="W-MON")  # 19 Dec .. 9 Jan
    cols = calendar_features(index, "W", "GB")
    hol = cols[:, calendar_feature_names("W").index("holiday")]
    # Christmas (Sun 25 Dec, substitute days 26-27) and New Year (Mon 2 Jan substitute)
    np.testing.assert_array_equal(hol, [1.0, 1.0, 1.0, 0.0])
    woy = cols[:, :2]
    np.testing.assert_allclose(np.hypot(woy[:, 0], woy[:, 1]), 1.0, rtol=1e-5)
