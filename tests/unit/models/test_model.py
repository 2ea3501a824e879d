"""The transformers model: checkpoint round trip, quantile shape rules, covariates, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.config import DemandcastConfig
from models.exceptions import InputError
from models.layers import mean_abs_scale, robust_clip
from models.modeling import DemandcastForecaster

from .conftest import TINY_MODEL


def _inputs(cfg: DemandcastConfig, batch: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    length = cfg.context_length + cfg.prediction_length
    return {
        "past_values": torch.poisson(torch.full((batch, cfg.context_length), 3.0), generator=g),
        "past_observed_mask": torch.ones(batch, cfg.context_length),
        "covariates": torch.rand(batch, length, cfg.num_covariates, generator=g),
        "static_ids": torch.randint(
            0, cfg.num_static_buckets, (batch, cfg.num_static_features), generator=g
        ),
    }


@pytest.fixture
def tiny() -> DemandcastForecaster:
    return DemandcastForecaster.from_pretrained(str(TINY_MODEL)).eval()


def test_fixture_is_small_safetensors() -> None:
    files = sorted(p.name for p in TINY_MODEL.iterdir())
    assert files == ["config.json", "model.safetensors"]
    assert (TINY_MODEL / "model.safetensors").stat().st_size < 100_000


def test_save_load_round_trip(tiny: DemandcastForecaster, tmp_path: Path) -> None:
    x = _inputs(tiny.config)
    with torch.inference_mode():
        before = tiny(**x).quantiles
    tiny.save_pretrained(str(tmp_path))
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    again = DemandcastForecaster.from_pretrained(str(tmp_path)).eval()
    with torch.inference_mode():
        after = again(**x).quantiles
    assert before is not None and after is not None
    torch.testing.assert_close(before, after)
    assert again.config.to_dict()["covariate_names"] == tiny.config.covariate_names


def test_quantiles_monotone_and_non_negative(tiny: DemandcastForecaster) -> None:
    cfg = tiny.config
    x = _inputs(cfg, batch=16, seed=1)
    x["past_values"] = x["past_values"] * torch.linspace(0, 50, 16)[:, None]  # incl. all-zero
    with torch.inference_mode():
        q = tiny(**x).quantiles
    assert q is not None
    assert q.shape == (16, cfg.prediction_length, len(cfg.quantile_levels))
    assert bool((q >= 0).all())
    assert bool((q.diff(dim=-1) >= 0).all())
    assert torch.isfinite(q).all()


def test_covariates_and_statics_change_the_output(tiny: DemandcastForecaster) -> None:
    x = _inputs(tiny.config)
    with torch.inference_mode():
        base = tiny(**x).quantiles
        y = dict(x, covariates=x["covariates"].clone())
        y["covariates"][:, tiny.config.context_length :, :] += 1.0  # future covariates only
        moved = tiny(**y).quantiles
        z = dict(x, static_ids=(x["static_ids"] + 1) % tiny.config.num_static_buckets)
        other = tiny(**z).quantiles
    assert base is not None and moved is not None and other is not None
    assert (base - moved).abs().max() > 1e-4
    assert (base - other).abs().max() > 1e-4


def test_robust_clip_and_scale() -> None:
    x = torch.ones(2, 112)
    x[0, 5] = 1e6  # one-off wholesale order
    mask = torch.ones(2, 112)
    mask[1, :100] = 0.0
    clipped = robust_clip(x, mask, 0.97)
    assert float(clipped.max()) == 1.0
    scale = mean_abs_scale(clipped * mask, mask)
    torch.testing.assert_close(scale, torch.ones(2, 1))
    zeros = mean_abs_scale(torch.zeros(1, 10), torch.ones(1, 10))
    assert float(zeros) == 1.0  # dormant SKU: scale 1, no division by zero


def test_loss_is_returned_with_targets(tiny: DemandcastForecaster) -> None:
    x = _inputs(tiny.config)
    y = torch.ones(5, tiny.config.prediction_length)
    out = tiny(**x, future_values=y)
    assert out.loss is not None and out.loss.ndim == 0
    assert out.quantiles is not None and out.scale is not None
    # the loaded model's quantile levels are the config's (regression: an uninitialised
    # buffer after from_pretrained gave garbage losses)
    q = (out.quantiles / out.scale.unsqueeze(-1)).detach()
    target = y / out.scale
    levels = torch.tensor(tiny.config.quantile_levels)
    diff = target.unsqueeze(-1) - q
    expected = torch.maximum(levels * diff, (levels - 1) * diff).mean()
    torch.testing.assert_close(out.loss.detach(), expected)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"past_values": torch.full((5, 14), float("nan"))}, "NaN"),
        ({"past_values": torch.ones(5, 13)}, "context_length=14"),
        ({"covariates": torch.ones(5, 21, 3)}, "covariates must have shape"),
        ({"covariates": None}, "needs covariates"),
        ({"static_ids": torch.zeros(5, 2, dtype=torch.long)}, "static_ids"),
        ({"past_observed_mask": torch.ones(5, 7)}, "past_observed_mask"),
    ],
)
def test_bad_tensors_give_clear_errors(
    tiny: DemandcastForecaster, change: dict[str, torch.Tensor | None], message: str
) -> None:
    x: dict[str, torch.Tensor | None] = dict(_inputs(tiny.config))
    x.update(change)
    with pytest.raises(InputError, match=message):
        tiny(**x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"context_length": 15}, "multiple of patch_length"),
        ({"quantile_levels": [0.2, 0.5, 0.9]}, "include 0.1"),
        ({"quantile_levels": [0.1, 0.9, 0.5]}, "strictly increasing"),
        ({"backbone": "lstm"}, "backbone"),
        ({"d_model": 30, "num_heads": 4}, "divisible"),
    ],
)
def test_bad_config_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        DemandcastConfig(**kwargs)  # type: ignore[arg-type]


def test_configurable_quantile_levels() -> None:
    cfg = DemandcastConfig(
        context_length=14,
        prediction_length=3,
        d_model=16,
        num_heads=2,
        quantile_levels=[0.05, 0.1, 0.5, 0.9, 0.95],
    )
    model = DemandcastForecaster(cfg).eval()
    x = _inputs(cfg, batch=2)
    x.pop("covariates")
    with torch.inference_mode():
        q = model(**x).quantiles
    assert q is not None and q.shape == (2, 3, 5)
    assert cfg.median_index == 2


def test_short_history_is_masked_not_an_error(tiny: DemandcastForecaster) -> None:
    x = _inputs(tiny.config, batch=3)
    mask = torch.zeros_like(x["past_observed_mask"])
    mask[:, -3:] = 1.0  # three days of history
    x["past_observed_mask"] = mask
    x["past_values"] = x["past_values"] * mask
    with torch.inference_mode():
        q = tiny(**x).quantiles
    assert q is not None and torch.isfinite(q).all()
    assert np.all(q.numpy() >= 0)


@pytest.mark.parametrize("lags", [2, 0])
def test_batch_shared_covariates_take_the_same_path(lags: int) -> None:
    """Covariates broadcast over the batch (stride 0, as the pipeline's inference batches
    pass the calendar) are embedded once: same quantiles as the materialised tensor."""
    cfg = DemandcastConfig(
        context_length=14,
        prediction_length=10,  # not a multiple of the patch: the future tokens are padded
        patch_length=7,
        d_model=16,
        num_layers=1,
        num_heads=2,
        ffn_dim=32,
        num_covariates=3,
        seasonal_lags=lags,
    )
    torch.manual_seed(0)
    model = DemandcastForecaster(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x = _inputs(cfg, batch=6)
    x["past_values"] = x["past_values"] * torch.arange(1, 7)[:, None]
    x["past_observed_mask"][0, :5] = 0.0
    row = torch.rand(1, cfg.context_length + cfg.prediction_length, 3)
    expanded = row.expand(6, -1, -1)
    assert expanded.stride(0) == 0
    with torch.inference_mode():
        fast = model(**dict(x, covariates=expanded)).quantiles
        slow = model(**dict(x, covariates=expanded.contiguous())).quantiles
    assert fast is not None and slow is not None
    assert fast.shape == (6, 10, len(cfg.quantile_levels))
    assert (fast[1:] - fast[:1]).abs().max() > 1e-3  # the rows do differ
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
