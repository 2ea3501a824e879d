"""Fixtures of the models tests: the committed tiny checkpoint, small panels, a real slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.config import DemandcastConfig
from models.data import Panel
from models.pipeline import TrainingConfig, TransformerForecaster
from models.synthetic import synthetic_panel

REPO = Path(__file__).resolve().parents[3]
TINY_MODEL = REPO / "tests" / "fixtures" / "tiny_model"
UCI_LOG = REPO.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"


def small_transformer(
    backbone: str = "patch",
    steps: int = 20,
    *,
    static: list[str] | None = None,
    batch_size: int = 4,
    **config: object,
) -> TransformerForecaster:
    """A tiny transformer (14-day context, d=16, one layer) that trains in seconds on CPU."""
    cfg = DemandcastConfig(
        context_length=14,
        patch_length=7,
        d_model=16,
        num_layers=1,
        num_heads=2,
        ffn_dim=32,
        dropout=0.0,
        backbone=backbone,
        num_static_buckets=64,
        **config,  # type: ignore[arg-type]
    )
    return TransformerForecaster(
        cfg,
        TrainingConfig(steps=steps, batch_size=32, eval_every=5),
        device="cpu",
        known=["price_rel"],
        static=static,
        batch_size=batch_size,
    )


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def panel() -> Panel:
    """12 intermittent daily series of 70 days with a price covariate; two new SKUs."""
    p = synthetic_panel(12, 70, seed=3)
    p.observed[0, :66] = False  # 4 days of history
    p.target[0, :66] = 0.0
    p.observed[1, :-1] = False  # a single day
    p.target[1, :-1] = 0.0
    rng = np.random.default_rng(0)
    p.known["price_rel"] = np.round(rng.uniform(0.8, 1.2, size=p.target.shape), 2)
    p.static["category"] = np.array([f"c{i % 3}" for i in range(12)])
    return p


@pytest.fixture(scope="session")
def uci_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Lines of the real UCI log for 2011-06..2011-11, copied into a temp folder."""
    if not UCI_LOG.exists():
        pytest.fail(
            f"the real UCI log is missing at {UCI_LOG} (shared/data is part of the checkout)"
        )
    df = pd.read_csv(UCI_LOG, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str})
    dates = df["InvoiceDate"].str.slice(0, 10)
    part = df[(dates >= "2011-06-01") & (dates < "2011-11-01")]
    out = tmp_path_factory.mktemp("uci") / "slice.csv"
    part.to_csv(out, index=False)
    return out
