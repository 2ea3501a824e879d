"""Warm starts (``TransformerForecaster.fine_tune``): a new forecaster from a fitted one's
weights, the source unchanged, frozen layers frozen, tables it cannot serve refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.config import DemandcastConfig
from models.data import Panel
from models.exceptions import CovariateError, InputError, NotFittedError
from models.finetune import trainable_parameters
from models.modeling import DemandcastForecaster
from models.pipeline import TrainingConfig, TransformerForecaster, training_summary
from models.registry import ModelRegistry

from .conftest import TINY_MODEL, small_transformer

FUTURE = {"price_rel": np.ones((12, 7))}


def _weights(f: TransformerForecaster) -> dict[str, torch.Tensor]:
    assert f.model is not None
    return {k: v.detach().clone() for k, v in f.model.state_dict().items()}


@pytest.fixture
def source(panel: Panel) -> TransformerForecaster:
    """A briefly trained forecaster (price covariate, hashed category)."""
    return small_transformer(steps=40, static=["category"]).fit(panel, 7)


def test_warm_start_returns_a_new_forecaster_and_leaves_the_source_alone(
    source: TransformerForecaster, panel: Panel
) -> None:
    before, config_before = _weights(source), source.config.to_dict()
    history_before, forecast_before = list(source.history), source.predict(panel, 7, FUTURE)
    # recent data with another shop pattern (closed on Mondays): nothing is re-derived
    recent = panel.slice(0, panel.length)
    recent.target = np.where(recent.index.day_of_week == 0, 0.0, recent.target)
    new = source.fine_tune(recent, steps=15, lr=3e-3)

    assert new is not source and new.model is not source.model
    assert new.config is not source.config and new.model is not None
    assert new.model.config is new.config
    after = _weights(source)
    assert all(torch.equal(before[k], after[k]) for k in before), "source weights changed"
    assert source.config.to_dict() == config_before and source.history == history_before
    np.testing.assert_array_equal(source.predict(panel, 7, FUTURE), forecast_before)

    changed = _weights(new)
    assert any(not torch.equal(before[k], changed[k]) for k in before)
    q = new.predict(panel, 7, FUTURE)
    assert q.shape == (12, 7, 9) and np.isfinite(q).all()
    assert np.abs(q - forecast_before).max() > 1e-6
    for field in (
        "known_covariates",
        "static_features",
        "covariate_names",
        "num_static_buckets",
        "freq",
        "context_length",
        "prediction_length",
        "quantile_levels",
        "open_rate",
        "holiday_open_rate",
    ):
        assert getattr(new.config, field) == getattr(source.config, field), field
    assert len(new.history) == 15 and new.training.steps == 15 and new.training.lr == 3e-3
    assert source.training.steps == 40  # the source's training settings are not touched
    assert new.warm_start_info is not None and new.warm_start_info["trainable"] == "all"


@pytest.mark.parametrize(
    ("trainable", "trained"),
    [
        ("head", ("head.",)),
        ("last_block", ("head.", "backbone.blocks.0.", "backbone.norm.")),
        (["head", "static_embed"], ("head.", "static_embed.")),
    ],
)
def test_frozen_parameters_keep_their_values(
    source: TransformerForecaster,
    panel: Panel,
    trainable: str | list[str],
    trained: tuple[str, ...],
) -> None:
    before = _weights(source)
    new = source.fine_tune(panel, steps=10, lr=1e-2, trainable=trainable)
    after = _weights(new)
    for name in before:
        same = torch.equal(before[name], after[name])
        if name.startswith(trained):
            assert not same, f"{name} should have trained"
        else:
            assert same, f"{name} is frozen but changed"
    assert new.model is not None
    assert all(p.requires_grad for p in new.model.parameters())  # an ordinary model again


def test_trainable_is_validated() -> None:
    model = DemandcastForecaster(DemandcastConfig(context_length=14, patch_length=7))
    with pytest.raises(InputError, match=r"not one of \['all', 'head', 'last_block'\]"):
        trainable_parameters(model, "heads")
    with pytest.raises(InputError, match="selects no parameter"):
        trainable_parameters(model, [])
    with pytest.raises(InputError, match=r"'decoder' matches no parameter.*'head\.proj'"):
        trainable_parameters(model, ["decoder"])
    with pytest.raises(InputError, match=r"'backbone\.blocks\.2' matches no parameter"):
        trainable_parameters(model, ["backbone.blocks.2"])  # two blocks: 0 and 1
    assert trainable_parameters(model, ["backbone.blocks.1."]) == [
        n for n, _ in model.named_parameters() if n.startswith("backbone.blocks.1.")
    ]
    gpt2 = DemandcastForecaster(
        DemandcastConfig(context_length=14, patch_length=7, d_model=16, backbone="gpt2")
    )
    last = trainable_parameters(gpt2, "last_block")
    assert last and all(n.startswith(("backbone.h.1.", "backbone.ln_f.", "head.")) for n in last)
    assert any(n.startswith("backbone.h.1.") for n in last)


def test_a_table_it_cannot_serve_is_refused(source: TransformerForecaster, panel: Panel) -> None:
    without_price = panel.slice(0, panel.length)
    without_price.known = {}
    with pytest.raises(CovariateError, match=r"lacks the known covariate\(s\) \['price_rel'\]"):
        source.fine_tune(without_price, steps=5, lr=1e-3)
    without_category = panel.slice(0, panel.length)
    without_category.static = {}
    with pytest.raises(CovariateError, match=r"--static category"):
        source.fine_tune(without_category, steps=5, lr=1e-3)
    nan_price = panel.slice(0, panel.length)
    nan_price.known = {"price_rel": np.full_like(panel.target, np.nan)}
    with pytest.raises(CovariateError, match="NaN"):
        source.fine_tune(nan_price, steps=5, lr=1e-3)
    weekly = panel.slice(0, panel.length)
    weekly.freq = "W"
    with pytest.raises(InputError, match="--freq D"):
        source.fine_tune(weekly, steps=5, lr=1e-3)
    with pytest.raises(InputError, match="too short"):
        source.fine_tune(panel.slice(0, 6), steps=5, lr=1e-3)
    with pytest.raises(InputError, match="steps >= 1"):
        source.fine_tune(panel, steps=0, lr=1e-3)
    with pytest.raises(InputError, match="learning rate"):
        source.fine_tune(panel, steps=5, lr=0.0)
    with pytest.raises(InputError, match="trainable"):
        source.fine_tune(panel, steps=5, lr=1e-3, trainable="everything")
    with pytest.raises(NotFittedError):
        small_transformer().fine_tune(panel, steps=5, lr=1e-3)


def test_warm_start_reaches_a_lower_loss_than_a_fresh_model(
    source: TransformerForecaster, panel: Panel
) -> None:
    """Same data, steps, learning rate and seed (so the same windows in the same order):
    starting from a trained model's weights gives a lower training loss on every one of
    those batches than starting from random weights (here by about 20%)."""
    steps, lr = 10, 1e-3
    tc = TrainingConfig(steps=steps, batch_size=32, lr=lr, warmup=0, eval_every=5, seed=7)
    warm = source.fine_tune(panel, steps=steps, lr=lr, training=tc)
    fresh = small_transformer(steps=steps, static=["category"])
    fresh.training = tc
    fresh.fit(panel, 7)
    warm_loss = [h["train_loss"] for h in warm.history]
    fresh_loss = [h["train_loss"] for h in fresh.history]
    assert all(w < f for w, f in zip(warm_loss, fresh_loss, strict=True))
    assert np.mean(warm_loss[-5:]) < 0.9 * np.mean(fresh_loss[-5:])
    assert warm.val_loss is not None and fresh.val_loss is not None
    assert warm.val_loss < fresh.val_loss


def test_warm_started_version_round_trips_through_the_registry(
    tmp_path: Path, panel: Panel
) -> None:
    """The updater's path: load the champion, fine-tune a copy, register it as a child."""
    reg = ModelRegistry(tmp_path / "registry")
    parent = reg.register(TransformerForecaster.from_pretrained(TINY_MODEL, device="cpu"))
    champion = reg.load_champion(device="cpu")
    served = champion.predict(panel, 7, FUTURE)
    new = champion.fine_tune(panel, steps=5, lr=1e-3, trainable="last_block")
    child = reg.register(new, training_summary(new, 1.0))
    meta = reg.metadata(child)
    assert meta["parent_version"] == parent and reg.champion() == parent
    assert meta["warm_start"]["trainable"] == "last_block"
    assert meta["training"]["steps"] == 5
    loaded = reg.load(child, device="cpu")
    np.testing.assert_allclose(
        loaded.predict(panel, 7, FUTURE), new.predict(panel, 7, FUTURE), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(reg.load(parent, device="cpu").predict(panel, 7, FUTURE), served)
    np.testing.assert_array_equal(champion.predict(panel, 7, FUTURE), served)
