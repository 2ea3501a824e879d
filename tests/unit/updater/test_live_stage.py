"""The live stage's pieces: the shadow pointer and the live evaluation of daily origins."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.data import Panel
from models.exceptions import RegistryCorruptError
from models.pipeline import TransformerForecaster
from models.shadow import Shadow, ShadowPointer
from updater.evaluation import live_evaluate

TINY_MODEL = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_model"
LEVELS = [0.1, 0.5, 0.9]


def panel(n: int = 6, days: int = 40, seed: int = 0) -> Panel:
    rng = np.random.default_rng(seed)
    target = rng.poisson(4.0, size=(n, days)).astype(float)
    return Panel(
        series_ids=[f"S{i}" for i in range(n)],
        index=pd.date_range("2011-01-01", periods=days, freq="D"),
        freq="D",
        target=target,
        observed=np.ones((n, days), dtype=bool),
    )


class Oracle:
    """Knows the whole panel: forecasts the actual future (shifted by ``lag`` days)."""

    def __init__(self, full: Panel, horizon: int, lag: int = 0) -> None:
        self.full, self.lag = full, lag
        self.config = SimpleNamespace(prediction_length=horizon)
        self.quantile_levels = LEVELS

    def predict(self, train: Panel, horizon: int, _future: Any) -> np.ndarray:
        lo = train.length - self.lag
        future = self.full.target[:, lo : lo + horizon]
        return np.repeat(future[:, :, None], len(LEVELS), axis=2)


def test_live_evaluation_scores_every_origin_on_the_actuals_that_arrived() -> None:
    p = panel()
    first, horizon = 30, 7
    out = live_evaluate({"oracle": Oracle(p, horizon), "late": Oracle(p, horizon, lag=1)}, p, first)
    # the oracle's forecasts are the actuals: only an aligned (origin, step) gives WQL 0
    assert out["oracle"].wql == pytest.approx(0.0)
    assert out["late"].wql > 0.1
    # the same cells for both: each origin counts the steps up to the panel's last day
    cells = sum(min(horizon, p.length - o) for o in range(first, p.length)) * p.num_series
    assert out["oracle"].observed == out["late"].observed == cells


def test_live_evaluation_of_the_real_model_on_cpu() -> None:
    tiny = TransformerForecaster.from_pretrained(TINY_MODEL, device="cpu")
    p = panel(days=60)
    if tiny.config.known_covariates:
        p = Panel(
            **{
                **p.__dict__,
                "known": {k: np.ones(p.target.shape) for k in tiny.config.known_covariates},
            }
        )
    out = live_evaluate({"champion": tiny, "challenger": tiny}, p, 55)
    assert out["champion"].wql == pytest.approx(out["challenger"].wql)
    assert np.isfinite(out["champion"].mase) and out["champion"].observed > 0
    with pytest.raises(ValueError, match="inside the panel"):
        live_evaluate({"champion": tiny}, p, p.length)


def test_the_shadow_pointer_round_trips_and_refuses_paths(tmp_path: Path) -> None:
    ptr = ShadowPointer(tmp_path)
    assert ptr.get() is None
    shadow = Shadow("v0002", "challenger", "2011-10-01T00:00:00+00:00", "v0001", {"x": 1})
    ptr.set(shadow)
    assert ptr.get() == shadow
    before = ptr.mtime()
    ptr.clear()
    assert ptr.get() is None and ptr.mtime() is not None and before is not None
    (tmp_path / "shadow.json").write_text('{"version": "../v0001", "role": "challenger"}')
    with pytest.raises(RegistryCorruptError, match="not a version"):
        ptr.get()
    (tmp_path / "shadow.json").write_text('{"version": "v0001", "role": "champion"}')
    with pytest.raises(RegistryCorruptError, match="role"):
        ptr.get()
    with pytest.raises(ValueError, match="role"):
        ptr.set(Shadow("v0003", "boss", "", "v0001"))
