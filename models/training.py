"""The trainer: random windows of a panel and the AdamW loop (warm-up + cosine learning
rate, an exponential moving average of the weights, the best weights by validation loss).

:func:`fit_new` trains a fresh network for a :class:`~models.pipeline.TransformerForecaster`
(what ``TransformerForecaster.fit`` runs); :func:`run_training` is the loop that
:mod:`models.finetune` (warm starts) runs too. Inference stays in :mod:`models.pipeline`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from models.data import Panel
from models.exceptions import InputError
from models.layers import robust_clip
from models.modeling import DemandcastForecaster, load_gpt2_weights

if TYPE_CHECKING:  # the pipeline imports this module; only its type is needed here
    from models.pipeline import TransformerForecaster

ProgressFn = Callable[[int, int, float, float | None], None]


def set_seed(seed: int) -> None:
    """Seed torch (CPU and CUDA) for reproducible training on CPU."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@dataclass
class TrainingConfig:
    """How :meth:`TransformerForecaster.fit` trains.

    Attributes:
        steps: optimizer steps; batch_size: windows per step; lr, weight_decay: AdamW.
        warmup: linear warm-up steps before the cosine decay.
        val_fraction: share of series whose last window is held out for the validation loss.
        eval_every: steps between validation evaluations (the best weights are kept).
        seed: seeds sampling and initialisation; num_threads: torch CPU threads (0 = keep).
        recent_weight: sampling weight ratio of the most recent vs the oldest windows.
        volume_weight: exponent ``a`` of per-window loss weights ``(scale / mean scale)^a``;
            0 weighs every series alike (like MASE), 1 by volume (like WQL).
        ema_decay: exponential moving average of the weights used for validation and the
            final model (0 disables).
        calibrate: after training, fit the levels to read off the network's quantile
            function (:mod:`models.calibration`) on the validation windows (out of
            training) and the most recent training window of every other series
            (:func:`calibration_windows`), moved ``calibration_shrink`` of the way. Off by
            default (the CLI's ``--calibrate``); figures in docs/models.md.
        calibration_shrink: the share of the measured correction applied (0.5: half).
        mase_weight: exponent ``b`` of a second per-window factor ``(scale / snaive_mae)^b``
            (normalised over the batch, clamped to ``[0.1, 10]``), where ``snaive_mae`` is the
            context's mean ``|y_t - y_{t-m}|``: the pinball loss is in units of the context's
            mean-absolute scale, MASE divides each series' error by its seasonal-naive MAE,
            so ``b = 1`` trains in MASE's units.
    """

    steps: int = 600
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-2
    warmup: int = 100
    val_fraction: float = 0.1
    eval_every: int = 100
    seed: int = 0
    num_threads: int = 0
    recent_weight: float = 3.0
    volume_weight: float = 0.0
    ema_decay: float = 0.98
    mase_weight: float = 0.0
    calibrate: bool = False
    calibration_shrink: float = 0.5


# --------------------------------------------------------------------------- windows


@dataclass
class TrainingWindows:
    """Where training samples from: a panel's padded arrays (see
    ``TransformerForecaster._padded_arrays``), every candidate window as a (series row,
    cut) pair with its sampling probability, and the series held out for validation."""

    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    statics: np.ndarray
    pair_row: np.ndarray
    pair_cut: np.ndarray
    weight: np.ndarray
    val_rows: np.ndarray
    val_cut: int

    def batch(
        self, f: TransformerForecaster, rows: np.ndarray, cuts: np.ndarray
    ) -> dict[str, torch.Tensor]:
        """Model inputs and targets of the windows of ``rows`` ending at padded ``cuts``."""
        return f._batch(rows, cuts, *self.arrays, self.statics, True)

    def validation_batch(self, f: TransformerForecaster) -> dict[str, torch.Tensor] | None:
        """The last window of every validation series (``None`` when there are none)."""
        if not len(self.val_rows):
            return None
        return self.batch(f, self.val_rows, np.full(len(self.val_rows), self.val_cut))


def training_windows(
    f: TransformerForecaster, panel: Panel, rng: np.random.Generator
) -> TrainingWindows:
    """Windows end anywhere from a series' first observed period on (so short histories are
    learned too) up to ``T - H``; the last window of ``val_fraction`` of the series (drawn
    with ``rng``) is held out. Recent windows are drawn up to ``recent_weight`` times as
    often as the oldest."""
    c, tc = f.config, f.training
    L, H = c.context_length, c.prediction_length
    n, t = panel.num_series, panel.length
    arrays = f._padded_arrays(panel, None, H)
    first = np.where(panel.observed.any(axis=1), panel.observed.argmax(axis=1), t)
    n_val = round(tc.val_fraction * n) if t - first.min() > 2 * H else 0
    val_rows = np.sort(rng.choice(n, size=n_val, replace=False)) if n_val else np.array([], int)
    val_rows = val_rows[first[val_rows] < t - H]
    # candidate (series, cut) pairs; cut = number of periods of history (unpadded)
    last_cut = np.full(n, t - H)
    last_cut[val_rows] = t - 2 * H
    lo = first + 1
    counts = np.maximum(last_cut - lo + 1, 0)
    if counts.sum() == 0:
        raise InputError(
            f"the table is too short to train a horizon of {H}: every series needs more "
            f"than {H} periods (or use a shorter --horizon)"
        )
    offsets = np.concatenate([[0], np.cumsum(counts)])
    pair_row = np.repeat(np.arange(n), counts)
    pair_cut = np.arange(offsets[-1]) - offsets[pair_row] + lo[pair_row]
    weight = 1.0 + (tc.recent_weight - 1.0) * pair_cut / max(t - H, 1)
    weight = weight / weight.sum()
    statics = f._static_ids(panel)
    return TrainingWindows(arrays, statics, pair_row, pair_cut, weight, val_rows, L + t - H)


def window_weights(
    past: torch.Tensor, mask: torch.Tensor, season: int, volume: float, mase: float
) -> torch.Tensor | None:
    """Per-window loss weights ``(B,)`` (mean 1 over the batch), ``None`` when both
    exponents are 0: ``(level / mean level)^volume · r^mase`` with ``level`` the context's
    robust mean-absolute value and ``r = level / snaive_mae`` (normalised to mean 1 and
    clamped to ``[0.1, 10]``); ``snaive_mae`` is the mean ``|y_t - y_{t-m}|`` over the
    context's observed pairs (``level`` where there is none)."""
    if not volume and not mase:
        return None
    pm = mask.to(past.dtype)
    level = robust_clip(past * pm, pm, 0.99).abs().sum(dim=1) / pm.sum(dim=1).clamp_min(1.0)
    level = level + 1e-3
    w = torch.ones_like(level)
    if volume:
        w = w * (level / level.mean()) ** volume
    if mase and past.shape[1] > season:
        both = pm[:, season:] * pm[:, :-season]
        diff = (past[:, season:] - past[:, :-season]).abs() * both
        cnt = both.sum(dim=1)
        snaive = torch.where(cnt > 0, diff.sum(dim=1) / cnt.clamp_min(1.0), level)
        ratio = level / (snaive + 1e-3)
        ratio = (ratio / ratio.mean()).clamp(0.1, 10.0)
        w = w * ratio**mase
    return w / w.mean()


# --------------------------------------------------------------------------- the loop


@dataclass
class _Loop:
    """The state of one training run over ``params`` (the trainable parameters)."""

    model: DemandcastForecaster
    params: list[torch.nn.Parameter]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    ema: list[torch.Tensor] | None
    autocast: bool
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    val_loss: float | None = None


def lr_factor(tc: TrainingConfig) -> Callable[[int], float]:
    """Multiplier of ``lr`` per step: linear warm-up, then cosine decay to 5%."""

    def lr_at(step: int) -> float:
        if step < tc.warmup:
            return (step + 1) / tc.warmup
        frac = (step - tc.warmup) / max(tc.steps - tc.warmup, 1)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))

    return lr_at


def _start(model: DemandcastForecaster, tc: TrainingConfig, autocast: bool) -> _Loop:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(tc))
    ema = [p.detach().clone() for p in params] if tc.ema_decay > 0 else None
    return _Loop(model, params, opt, sched, ema, autocast)


def _train_step(
    loop: _Loop, batch: dict[str, torch.Tensor], tc: TrainingConfig, season: int, step: int
) -> float:
    """One optimiser step on ``batch`` (and the EMA update); returns the training loss."""
    model = loop.model
    model.train()
    weight_w = window_weights(
        batch["past_values"], batch["past_observed_mask"], season, tc.volume_weight, tc.mase_weight
    )
    if weight_w is not None:
        batch["sample_weight"] = weight_w
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=loop.autocast):
        out = model(**batch, validate=False)
    assert out.loss is not None
    loop.opt.zero_grad(set_to_none=True)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    loop.opt.step()
    loop.sched.step()
    if loop.ema is not None:
        decay = min(tc.ema_decay, (step + 1) / (step + 10))
        with torch.no_grad():
            torch._foreach_lerp_(loop.ema, [p.detach() for p in loop.params], 1.0 - decay)
    return float(out.loss.detach())


def _validate(loop: _Loop, val_batch: dict[str, torch.Tensor]) -> None:
    """Validation loss of the EMA weights; keep a copy of the weights when it is the best."""
    model = loop.model
    model.eval()
    raw = _swap_in(loop.params, loop.ema)
    with (
        torch.inference_mode(),
        torch.autocast("cuda", dtype=torch.bfloat16, enabled=loop.autocast),
    ):
        vl = model(**val_batch, validate=False).loss
    loop.val_loss = float(vl) if vl is not None else None
    if loop.val_loss is not None and (loop.best is None or loop.val_loss < loop.best[0]):
        loop.best = (loop.val_loss, {k: v.detach().clone() for k, v in model.state_dict().items()})
    _swap_in(loop.params, raw)


def _finish(loop: _Loop) -> float | None:
    """Leave the best validated weights (else the EMA's) in the model; their val loss."""
    if loop.best is not None:
        loop.model.load_state_dict(loop.best[1])
    else:
        _swap_in(loop.params, loop.ema)
    loop.model.eval()
    return loop.best[0] if loop.best is not None else None


def _swap_in(
    params: list[torch.nn.Parameter], values: list[torch.Tensor] | None
) -> list[torch.Tensor] | None:
    """Copy ``values`` into ``params``; return the previous values (``None``: no-op)."""
    if values is None:
        return None
    with torch.no_grad():
        previous = [p.detach().clone() for p in params]
        for p, v in zip(params, values, strict=True):
            p.copy_(v)
    return previous


def run_training(
    f: TransformerForecaster,
    panel: Panel,
    rng: np.random.Generator,
    progress: ProgressFn | None = None,
) -> None:
    """Train ``f.model``'s trainable parameters on random windows of ``panel`` with
    ``f.training``; sets ``f.history`` and ``f.val_loss``. ``progress(step, steps,
    train_loss, val_loss)`` is called after every step."""
    tc, model = f.training, f._require_model()
    win = training_windows(f, panel, rng)
    loop = _start(model, tc, f.device.type == "cuda")
    val_batch = win.validation_batch(f)
    L = f.config.context_length
    f.history = []
    for step in range(tc.steps):
        pick = rng.choice(len(win.pair_row), size=tc.batch_size, p=win.weight)
        batch = win.batch(f, win.pair_row[pick], win.pair_cut[pick] + L)
        train_loss = _train_step(loop, batch, tc, f.config.season_length, step)
        if val_batch is not None and ((step + 1) % tc.eval_every == 0 or step + 1 == tc.steps):
            _validate(loop, val_batch)
        val_loss = loop.val_loss
        f.history.append(
            {
                "step": step + 1,
                "train_loss": train_loss,
                "val_loss": val_loss if val_loss is not None else float("nan"),
            }
        )
        if progress is not None:
            progress(step + 1, tc.steps, train_loss, val_loss)
    f.val_loss = _finish(loop)
    if tc.calibrate:
        f.config.read_levels = _fit_read_levels(f, model, win, val_batch)


def _window_quantiles(
    model: DemandcastForecaster, batch: dict[str, torch.Tensor]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Actuals ``(R, H)``, quantiles ``(R, H, Q)`` and the observed mask of a batch."""
    inputs = {k: v for k, v in batch.items() if not k.startswith("future_")}
    model.eval()
    with torch.inference_mode():
        q = model(**inputs, validate=False).quantiles.float().cpu().numpy()
    y = batch["future_values"].float().cpu().numpy()
    observed = batch["future_observed_mask"].cpu().numpy().astype(bool)
    return y, q, observed


def calibration_windows(
    f: TransformerForecaster, win: TrainingWindows, val_batch: dict[str, torch.Tensor] | None
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """What the levels are calibrated on: the validation windows (out of training) and
    the most recent training window of every other series."""
    model = f._require_model()
    blocks = [] if val_batch is None else [_window_quantiles(model, val_batch)]
    last = {int(r): int(c) for r, c in zip(win.pair_row, win.pair_cut, strict=True)}
    rows = np.array(sorted(set(last) - set(win.val_rows.tolist())), dtype=np.int64)
    L = f.config.context_length
    for s in range(0, len(rows), 512):
        part = rows[s : s + 512]
        cuts = np.array([last[int(r)] for r in part]) + L
        blocks.append(_window_quantiles(model, win.batch(f, part, cuts)))
    return blocks


def _fit_read_levels(
    f: TransformerForecaster,
    model: DemandcastForecaster,
    win: TrainingWindows,
    val_batch: dict[str, torch.Tensor] | None,
) -> list[float] | None:
    """The calibrated levels to read (:mod:`models.calibration`) from the calibration
    windows' quantiles and actuals (:func:`calibration_windows`); ``None`` when too few."""
    from models.calibration import fit_levels, realised_levels

    blocks = calibration_windows(f, win, val_batch)
    if not blocks:
        return None
    levels = f.config.quantile_levels
    y, q, o = (np.concatenate([b[i] for b in blocks]) for i in range(3))
    report: dict[str, Any] = {"points": int(o.sum())}
    if val_batch is not None and len(blocks) > 1:
        n = len(blocks[0][0])
        report["validation"] = realised_levels(y[:n], q[:n], levels, o[:n]).round(3).tolist()
        report["recent"] = realised_levels(y[n:], q[n:], levels, o[n:]).round(3).tolist()
    f.calibration_report = report
    return fit_levels(y, q, levels, o, f.training.calibration_shrink)


# --------------------------------------------------------------------------- entry points


def check_targets(panel: Panel) -> None:
    """A table to train on: at least one series and period, finite targets."""
    if panel.num_series == 0 or panel.length == 0:
        raise InputError("cannot train on an empty table")
    if not np.isfinite(np.where(panel.observed, panel.target, 0.0)).all():
        raise InputError("the table has NaN or infinite targets; write 0 for no sales")


def seeded_rng(tc: TrainingConfig, device: torch.device) -> np.random.Generator:
    """Threads and seeds of a run: torch's global RNG and the window sampler."""
    if tc.num_threads > 0 and device.type == "cpu":
        torch.set_num_threads(tc.num_threads)
    set_seed(tc.seed)
    return np.random.default_rng(tc.seed)


def fit_new(
    f: TransformerForecaster,
    panel: Panel,
    horizon: int | None = None,
    progress: ProgressFn | None = None,
) -> None:
    """Fill ``f.config``'s data-dependent fields from ``panel``, build a fresh network (GPT-2
    weights when configured) as ``f.model`` and train it (:func:`run_training`)."""
    check_targets(panel)
    f._prepare_config(panel, horizon or f.config.prediction_length)
    c = f.config
    rng = seeded_rng(f.training, f.device)
    model = DemandcastForecaster(c)
    if c.backbone == "gpt2" and c.gpt2_path:
        load_gpt2_weights(model, c.gpt2_path)
    f.model = torch.nn.Module.to(model, f.device)
    run_training(f, panel, rng, progress)


def training_summary(f: TransformerForecaster, seconds: float) -> dict[str, Any]:
    """JSON-able facts about a fit (for registry metadata)."""
    out = {
        "training": asdict(f.training),
        "val_loss": f.val_loss,
        "train_seconds": seconds,
        "device": str(f.device),
    }
    if f.warm_start_info is not None:
        out["warm_start"] = dict(f.warm_start_info)
    return out


def timed_fit(
    f: TransformerForecaster, panel: Panel, horizon: int, progress: ProgressFn | None = None
) -> float:
    """Fit and return wall seconds."""
    t0 = time.perf_counter()
    f.fit(panel, horizon, progress)
    return time.perf_counter() - t0


__all__ = [
    "ProgressFn",
    "TrainingConfig",
    "TrainingWindows",
    "check_targets",
    "fit_new",
    "lr_factor",
    "run_training",
    "seeded_rng",
    "set_seed",
    "timed_fit",
    "training_summary",
    "training_windows",
    "window_weights",
]
