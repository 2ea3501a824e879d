"""Warm starts (the chronos-2 ``fit()`` contract): fine-tune a *copy* of a fitted forecaster.

:func:`warm_start` deep-copies the source's config, builds a new network, loads the
source's weights, trains all or some of them with :func:`models.training.run_training` on a
table the source can serve, and returns a new forecaster; the source is never changed. The
updater calls it (through :meth:`TransformerForecaster.fine_tune`) to fine-tune the serving
champion on recent data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from models.config import DemandcastConfig
from models.data import Panel
from models.exceptions import CovariateError, InputError
from models.modeling import DemandcastForecaster
from models.training import ProgressFn, TrainingConfig, check_targets, run_training, seeded_rng

if TYPE_CHECKING:  # the pipeline imports this module; only its type is needed here
    from models.pipeline import TransformerForecaster

#: Named sets of trainable parameters; a list of parameter-name prefixes (module paths such
#: as ``"head"`` or ``"backbone.blocks.1"``) is the general form.
TRAINABLE_PRESETS = ("all", "head", "last_block")
Trainable = str | Sequence[str]


def check_servable(config: DemandcastConfig, panel: Panel) -> None:
    """Raise unless a model of ``config`` can train on (and forecast) ``panel``: same
    frequency, every known covariate (finite) and static feature present."""
    check_targets(panel)
    if panel.freq != config.freq:
        raise InputError(
            f"the model forecasts freq {config.freq!r} but the table is {panel.freq!r}; "
            f"read the table with --freq {config.freq}"
        )
    wanted = (
        ("known covariate", list(config.known_covariates), panel.known, "--known"),
        ("static feature", list(config.static_features), panel.static, "--static"),
    )
    for kind, names, have, option in wanted:
        missing = [k for k in names if k not in have]
        if missing:
            raise CovariateError(
                f"the table lacks the {kind}(s) {missing} this model was trained with (it has "
                f"{sorted(have) or 'none'}); read it with {option} {','.join(names)}"
            )
    for name in config.known_covariates:
        if not np.isfinite(panel.known[name]).all():
            raise CovariateError(f"covariate {name!r} has NaN or infinite values; fill them")


def trainable_parameters(model: DemandcastForecaster, trainable: Trainable) -> list[str]:
    """Names of the parameters that ``trainable`` selects (in the model's order).

    ``"all"``; ``"head"`` (the quantile head); ``"last_block"`` (the backbone's last block,
    its final norm and the head); or prefixes: module paths or parameter names such as
    ``["head", "backbone.blocks.1"]`` (``"backbone.blocks.1"`` does not match block 10).
    """
    names = [n for n, _ in model.named_parameters()]
    c = model.config
    if isinstance(trainable, str):
        if trainable not in TRAINABLE_PRESETS:
            raise InputError(
                f"trainable={trainable!r} is not one of {list(TRAINABLE_PRESETS)}; pass one of "
                "them or a list of parameter-name prefixes such as ['head', 'backbone.norm']"
            )
        if trainable == "all":
            return names
        blocks, norm = ("h", "ln_f") if c.backbone == "gpt2" else ("blocks", "norm")
        last = [f"backbone.{blocks}.{c.num_layers - 1}", f"backbone.{norm}"]
        prefixes = ["head"] + (last if trainable == "last_block" else [])
    else:
        prefixes = list(trainable)
    if not prefixes:
        raise InputError(
            "trainable=[] selects no parameter; pass 'all', 'head', 'last_block' or prefixes"
        )
    chosen: set[str] = set()
    for prefix in prefixes:
        p = prefix.rstrip(".")
        hits = {n for n in names if n == p or n.startswith(p + ".")}
        if not hits:
            modules = list(dict.fromkeys(".".join(n.split(".")[:-1][:3]) for n in names))
            raise InputError(
                f"trainable prefix {prefix!r} matches no parameter of this model; use module "
                f"paths of {modules} (or 'all', 'head', 'last_block')"
            )
        chosen |= hits
    return [n for n in names if n in chosen]


def _check_run(tc: TrainingConfig) -> None:
    if tc.steps < 1 or tc.warmup < 0 or tc.batch_size < 1:
        raise InputError(
            f"a warm start needs steps >= 1, warmup >= 0 and batch_size >= 1; got steps="
            f"{tc.steps}, warmup={tc.warmup}, batch_size={tc.batch_size}"
        )
    if not (math.isfinite(tc.lr) and tc.lr > 0):
        raise InputError(f"the learning rate must be a positive number, got lr={tc.lr}")


def warm_start(
    source: TransformerForecaster,
    panel: Panel,
    training: TrainingConfig,
    trainable: Trainable = "all",
    progress: ProgressFn | None = None,
) -> TransformerForecaster:
    """A new forecaster trained from ``source``'s weights; ``source`` is not changed.

    The new one deep-copies ``source``'s config (frequency, context length, horizon, quantile
    levels, covariate names, open rates, hash buckets: nothing is re-derived from
    ``panel``), builds a new network, loads the source's weights and trains the parameters
    ``trainable`` selects (:func:`trainable_parameters`; the others keep the source's
    values) with ``training``. A table the source cannot serve is refused
    (:func:`check_servable`).
    """
    src = source._require_model()
    _check_run(training)
    check_servable(src.config, panel)
    selected = set(trainable_parameters(src, trainable))
    new = type(source)(
        src.config,  # the config the weights belong to, deep-copied by the constructor
        training,
        device=source.device,
        known=list(src.config.known_covariates),
        static=list(src.config.static_features),
        batch_size=source.batch_size,
        name=source.name,
        compile=source.compile,
    )
    rng = seeded_rng(training, new.device)
    model = DemandcastForecaster(new.config)
    model.load_state_dict(src.state_dict())
    new.model = torch.nn.Module.to(model, new.device)
    for name, p in model.named_parameters():
        p.requires_grad_(name in selected)
    try:
        run_training(new, panel, rng, progress)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    new.warm_start_info = {
        "trainable": trainable if isinstance(trainable, str) else list(trainable),
        "trainable_parameters": sum(
            p.numel() for n, p in model.named_parameters() if n in selected
        ),
        "steps": training.steps,
        "lr": training.lr,
    }
    return new


__all__ = [
    "TRAINABLE_PRESETS",
    "Trainable",
    "check_servable",
    "trainable_parameters",
    "warm_start",
]
