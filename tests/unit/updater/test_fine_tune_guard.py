"""The cycle's fine-tune on its own (no Redis): a real divergence (NaN loss) and a spent
budget raise before any candidate exists; the champion's weights are never changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.data import Panel
from models.pipeline import TransformerForecaster
from models.registry import ModelRegistry
from streams.settings import Settings
from updater.cycle import Cycle, CycleOptions
from updater.exceptions import BudgetExceededError, FineTuneDivergedError

TINY_MODEL = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_model"


def _panel() -> Panel:
    rng = np.random.default_rng(0)
    n, t = 12, 42
    return Panel(
        [f"s{i}" for i in range(n)],
        pd.date_range("2011-01-03", periods=t, freq="D"),
        "D",
        rng.poisson(5, (n, t)).astype(float),
        np.ones((n, t), dtype=bool),
        known={"price_rel": np.ones((n, t))},
    )


def _cycle(tmp_path: Path, **settings: object) -> Cycle:
    s = Settings(model_registry=tmp_path, updater_steps=8, updater_cpu_threads=1, **settings)  # type: ignore[arg-type]
    return Cycle(s, client=object(), registry=ModelRegistry(tmp_path))


def test_a_real_divergence_raises_and_leaves_the_champion(tmp_path: Path) -> None:
    champion = TransformerForecaster.from_pretrained(TINY_MODEL, device="cpu")
    assert champion.model is not None
    before = {k: v.clone() for k, v in champion.model.state_dict().items()}
    cycle = _cycle(tmp_path)
    with pytest.raises(FineTuneDivergedError, match="diverged: loss nan"):
        cycle._fine_tune(champion, _panel(), CycleOptions(diverge=True))
    after = champion.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    good = cycle._fine_tune(champion, _panel(), CycleOptions())
    assert (
        good is not champion
        and np.isfinite(good.predict(_panel(), 7, {"price_rel": np.ones((12, 7))})).all()
    )


def test_a_spent_budget_raises(tmp_path: Path) -> None:
    champion = TransformerForecaster.from_pretrained(TINY_MODEL, device="cpu")
    cycle = _cycle(tmp_path, updater_budget_seconds=1e-9)
    with pytest.raises(BudgetExceededError, match="budget"):
        cycle._fine_tune(champion, _panel(), CycleOptions())
    assert torch.get_num_threads() >= 1
