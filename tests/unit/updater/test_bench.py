"""``bench updater`` on a small order log written here and a small transformer trained
here: the updater's decision runs at every cadence, fine-tunes when triggered, and a
deliberately bad candidate is rejected every time, so the served forecasts are the frozen
champion's exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.config import DemandcastConfig
from models.data import panel_from_frame, read_uci_log, uci_to_long
from models.pipeline import TrainingConfig, TransformerForecaster
from streams.serving.model_holder import ServingModel
from streams.settings import Settings
from updater.bench import UpdaterBenchOptions, bench_updater

SPLIT = datetime(2011, 3, 12, tzinfo=UTC)


def _log(path: Path) -> Path:
    """Four SKUs of very different levels, 100 days of orders with a weekly pattern."""
    rng = np.random.default_rng(0)
    rows = []
    for day in pd.date_range("2011-01-01", periods=100, freq="D"):
        for k, sku in enumerate(("A1", "B2", "C3", "D4")):
            qty = int(rng.poisson((1, 6, 20, 60)[k] * (3 if day.day_of_week == 4 else 1)))
            if qty:
                when = f"{day:%Y-%m-%d} 10:00"
                rows.append((f"{day:%m%d}{k}", sku, "x", qty, when, 1.5, "1", "UK"))
    cols = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice"]
    pd.DataFrame(rows, columns=[*cols, "CustomerID", "Country"]).to_csv(path, index=False)
    return path


def _champion(log: Path) -> tuple[ServingModel, TransformerForecaster]:
    torch.manual_seed(0)
    lines = read_uci_log(log)
    frame = uci_to_long(lines[lines["InvoiceDate"] < SPLIT.replace(tzinfo=None)], "D")
    config = DemandcastConfig(
        context_length=14,
        patch_length=7,
        prediction_length=7,
        d_model=16,
        num_layers=1,
        num_heads=2,
        ffn_dim=32,
        dropout=0.0,
    )
    f = TransformerForecaster(
        config, TrainingConfig(steps=150, batch_size=16, eval_every=50), device="cpu", known=[]
    )
    f.fit(panel_from_frame(frame, "D"))
    serving = ServingModel("v0001", f, list(f.quantile_levels), 14, 7)
    return serving, f


@pytest.mark.parametrize("cadence", [10])
def test_every_bad_candidate_is_rejected_and_the_frozen_model_keeps_serving(
    tmp_path: Path, cadence: int
) -> None:
    log = _log(tmp_path / "orders.csv")
    frozen, champion = _champion(log)
    s = Settings(
        model_registry=tmp_path / "models",
        updater_steps=40,
        updater_cpu_threads=1,
        updater_schedule_days=1,
        updater_history_days=60,
        updater_min_sku_days=1,
    )
    opts = UpdaterBenchOptions(log=log, split=SPLIT, cadence_days=cadence, bad_candidate=True)
    seen: list[dict[str, object]] = []
    report = bench_updater(s, opts, frozen, champion, ["A1", "B2", "C3", "D4"], seen.append)
    assert report["period"] == {"first_day": "2011-03-12", "days": 30}
    assert len(report["decisions"]) == 3 and seen == report["decisions"]
    assert report["fine_tunes"] == 3 and report["triggers"] == 3  # the schedule: every time
    assert report["promotions"] == 0 and report["rejections"] == 3
    assert all(d["outcome"] == "rejected" for d in report["decisions"])
    assert report["served"] == report["frozen"] and report["served_vs_frozen_wql"] == 0.0
    assert set(report["months"]) == {"2011-03", "2011-04"}
    assert 0.0 < report["frozen"]["wql"] < 2.0
