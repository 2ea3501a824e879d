"""Training and inference pipeline: real data, GPT-2 backbone, covariate errors, devices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2Model

from models.backtest import score
from models.baselines import SeasonalNaive, SeasonalNaiveBand
from models.config import DemandcastConfig
from models.data import Panel, panel_from_frame, read_uci_log, uci_to_long
from models.exceptions import CovariateError, InputError
from models.metrics import seasonal_naive_scale
from models.modeling import DemandcastForecaster, load_gpt2_weights
from models.pipeline import TrainingConfig, TransformerForecaster, resolve_device, window_weights

from .conftest import small_transformer


def _small(backbone: str = "patch", steps: int = 20, **kw: Any) -> TransformerForecaster:
    return small_transformer(backbone, steps, **kw)


def test_trained_briefly_on_real_data_beats_seasonal_naive(uci_slice: Path) -> None:
    """30 best-selling SKUs of Jun–Oct 2011; the last 28 days are held out."""
    table = uci_to_long(read_uci_log(uci_slice), "D", top=30)
    panel = panel_from_frame(table, "D")
    h = 28
    history = panel.slice(0, panel.length - h)
    actual = panel.target[:, -h:]
    cfg = DemandcastConfig(
        context_length=56,
        patch_length=7,
        d_model=32,
        num_layers=1,
        num_heads=4,
        ffn_dim=64,
        dropout=0.0,
    )
    model = TransformerForecaster(
        cfg,
        TrainingConfig(steps=150, batch_size=64, lr=5e-3, warmup=20, eval_every=50, seed=0),
        device="cpu",
    )
    model.fit(history, h)
    assert model.val_loss is not None and np.isfinite(model.val_loss)
    scale = seasonal_naive_scale(history.target, 7, history.observed)
    ours = score(actual, model.predict(history, h), model.quantile_levels, scale)
    naive = score(
        actual, SeasonalNaive(7).fit(history).predict(history, h), model.quantile_levels, scale
    )
    band = score(
        actual, SeasonalNaiveBand(7).fit(history).predict(history, h), model.quantile_levels, scale
    )
    assert ours["mase"] < naive["mase"]
    assert ours["wql"] < min(naive["wql"], band["wql"])


def test_gpt2_backbone_end_to_end(panel: Panel, tmp_path: Path) -> None:
    # a local "pretrained" GPT-2 (random, tiny) stands in for real weights
    gpt = GPT2Model(GPT2Config(vocab_size=8, n_positions=16, n_embd=16, n_layer=2, n_head=2))
    gpt.save_pretrained(str(tmp_path / "gpt2"))
    f = _small("gpt2", steps=10, gpt2_path=str(tmp_path / "gpt2"))
    f.config.num_layers = 2
    f.fit(panel, 7)
    assert f.model is not None and isinstance(f.model.backbone, GPT2Model)
    q = f.predict(panel, 7, {"price_rel": np.ones((12, 7))})
    assert q.shape == (12, 7, 9) and np.isfinite(q).all()
    f.save_pretrained(tmp_path / "saved")
    again = TransformerForecaster.from_pretrained(tmp_path / "saved", device="cpu")
    assert again.config.backbone == "gpt2"
    np.testing.assert_allclose(
        again.predict(panel, 7, {"price_rel": np.ones((12, 7))}), q, rtol=1e-5, atol=1e-5
    )


def test_gpt2_weights_are_copied(tmp_path: Path) -> None:
    gpt = GPT2Model(GPT2Config(vocab_size=8, n_positions=16, n_embd=16, n_layer=1, n_head=2))
    gpt.save_pretrained(str(tmp_path))
    cfg = DemandcastConfig(
        context_length=14,
        prediction_length=7,
        d_model=16,
        num_layers=1,
        num_heads=2,
        ffn_dim=64,
        backbone="gpt2",
    )
    model = DemandcastForecaster(cfg)
    load_gpt2_weights(model, str(tmp_path))
    own = model.backbone.state_dict()
    torch.testing.assert_close(
        own["h.0.attn.c_attn.weight"], gpt.state_dict()["h.0.attn.c_attn.weight"]
    )
    wide = DemandcastForecaster(
        DemandcastConfig(
            context_length=14, prediction_length=7, d_model=32, num_heads=2, backbone="gpt2"
        )
    )
    with pytest.raises(InputError, match="set d_model=16"):
        load_gpt2_weights(wide, str(tmp_path))


def test_covariate_errors(panel: Panel) -> None:
    with pytest.raises(CovariateError, match=r"unknown covariate\(s\) \['promo'\]"):
        TransformerForecaster(DemandcastConfig(), known=["promo"]).fit(panel, 7)
    f = _small().fit(panel, 7)
    with pytest.raises(CovariateError, match="pass their values"):
        f.predict(panel, 7)
    with pytest.raises(CovariateError, match=r"must be \(12, 7\)"):
        f.predict(panel, 7, {"price_rel": np.ones((12, 5))})
    with pytest.raises(CovariateError, match="NaN"):
        f.predict(panel, 7, {"price_rel": np.full((12, 7), np.nan)})
    with pytest.raises(InputError, match="at most 7 periods"):
        f.predict(panel, 8, {"price_rel": np.ones((12, 8))})


def test_future_covariates_change_the_forecast(panel: Panel) -> None:
    f = _small(steps=30).fit(panel, 7)
    a = f.predict(panel, 7, {"price_rel": np.ones((12, 7))})
    b = f.predict(panel, 7, {"price_rel": np.full((12, 7), 3.0)})
    assert np.abs(a - b).max() > 1e-6


def test_training_is_reproducible_and_seed_matters(panel: Panel) -> None:
    fut = {"price_rel": np.ones((12, 7))}
    a = _small(steps=10).fit(panel, 7).predict(panel, 7, fut)
    b = _small(steps=10).fit(panel, 7).predict(panel, 7, fut)
    np.testing.assert_array_equal(a, b)
    other = _small(steps=10)
    other.training.seed = 1
    c = other.fit(panel, 7).predict(panel, 7, fut)
    assert np.abs(a - c).max() > 0


def test_window_weights() -> None:
    """Volume and MASE-alignment weights: mean 1, ``None`` when off, and the MASE factor
    up-weights the window whose seasonal-naive MAE is small relative to its level."""
    mask = torch.ones(3, 28)
    steady = torch.tensor([4.0, 4, 4, 4, 4, 0, 4] * 4)  # level ~3.4, snaive MAE 0
    noisy = torch.tensor([0.0, 8, 0, 8, 0, 0, 8] * 2 + [8.0, 0, 8, 0, 0, 0, 0] * 2)
    small = steady / 4
    past = torch.stack([steady, noisy, small])
    assert window_weights(past, mask, 7, 0.0, 0.0) is None
    vol = window_weights(past, mask, 7, 1.0, 0.0)
    assert vol is not None and float(vol.mean()) == pytest.approx(1.0)
    assert vol[0] > vol[2] and vol[0] / vol[2] == pytest.approx(4.0, rel=1e-2)
    mase = window_weights(past, mask, 7, 0.0, 1.0)
    assert mase is not None and float(mase.mean()) == pytest.approx(1.0)
    assert mase[0] > mase[1] and mase[2] > mase[1]


def test_too_short_table_is_an_error() -> None:
    p = Panel(
        ["a"],
        __import__("pandas").date_range("2024-01-01", periods=5),
        "D",
        np.ones((1, 5)),
        np.ones((1, 5), bool),
    )
    with pytest.raises(InputError, match="too short"):
        TransformerForecaster(DemandcastConfig(context_length=14, prediction_length=7)).fit(p, 7)


def test_devices() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            resolve_device("cuda")
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("tpu")


def test_inference_batches_match_the_training_gather(panel: Panel) -> None:
    """The broadcast fast path of inference builds the same tensors as the general gather."""
    f = _small(steps=2)
    f.known = []
    f.fit(panel, 7)
    c = f.config
    target, observed, tf, known = f._padded_arrays(panel, None, c.prediction_length)
    statics = f._static_ids(panel)
    rows = np.arange(panel.num_series)
    cut = c.context_length + panel.length
    fast = f._batch(rows, np.full(len(rows), cut), target, observed, tf, known, statics, False)
    cuts = np.full(len(rows), cut)
    cuts_general = cuts.copy()
    general = f._batch(rows[::-1].copy(), cuts_general, target, observed, tf, known, statics, False)
    for key in ("past_values", "past_observed_mask", "covariates", "static_ids"):
        torch.testing.assert_close(fast[key], general[key].flip(0))
    q1 = f.predict(panel, 7)
    f.batch_size = 5
    np.testing.assert_allclose(f.predict(panel, 7), q1, rtol=1e-5, atol=1e-5)


def test_compiled_inference_matches_eager(panel: Panel) -> None:
    """``compile=True``: one torch.compile'd graph, partial batches padded to its shape and
    the padding dropped; the quantiles are the eager ones, whatever the number of series,
    and histories of other lengths reuse the graph (a recompile would fall back to eager)."""
    f = _small(steps=2)
    f.fit(panel, 7)
    future = {"price_rel": np.full((panel.num_series, 7), 0.9)}
    eager = f.predict(panel, 7, future)
    shorter = panel.slice(0, 40)
    eager_shorter = f.predict(shorter, 7, future)
    f.batch_size, f.compile = 5, True  # 12 series: batches of 5, 5 and 2 (+3 padding rows)
    f.warm_up()
    with torch._dynamo.config.patch(error_on_recompile=True):
        np.testing.assert_allclose(f.predict(panel, 7, future), eager, rtol=1e-4, atol=1e-4)
        got = f.predict(shorter, 7, future)
    np.testing.assert_allclose(got, eager_shorter, rtol=1e-4, atol=1e-4)
    assert f.compile and f._compiled is not None, "compiled, not fallen back to eager"
    few = panel.slice(0, panel.length)
    few.series_ids, few.target, few.observed = few.series_ids[:3], few.target[:3], few.observed[:3]
    few.known = {k: v[:3] for k, v in few.known.items()}
    few.static = {k: v[:3] for k, v in few.static.items()}
    got = f.predict(few, 7, {"price_rel": future["price_rel"][:3]})
    np.testing.assert_allclose(got, eager[:3], rtol=1e-4, atol=1e-4)
