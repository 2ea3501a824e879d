"""Pipeline (layer 4): panels in, quantile forecasts out; training, inference, devices.

:class:`TransformerForecaster` implements the :class:`~models.baselines.Forecaster`
protocol around :class:`~models.modeling.DemandcastForecaster`: it turns a
:class:`~models.data.Panel` into model tensors (history windows, calendar / holiday / open
covariates, known covariates, hashed static ids), trains a global model on random windows
of every series with the pinball loss, and predicts in batches under ``torch.inference_mode``
(bf16 autocast on CUDA).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.config import DemandcastConfig
from models.data import FREQ_ALIASES, Panel, check_future_known, hash_bucket, validate_known
from models.exceptions import CovariateError, InputError, NotFittedError
from models.features import calendar_feature_names, calendar_features, estimate_open_rates
from models.layers import robust_clip
from models.modeling import DemandcastForecaster, load_gpt2_weights

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but no CUDA GPU is visible; use 'auto' or 'cpu'")
    if device not in ("cpu", "cuda"):
        raise InputError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


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


ProgressFn = Callable[[int, int, float, float | None], None]


class TransformerForecaster:
    """The trained forecaster behind the ``Forecaster`` protocol (name ``"transformer"``).

    Args:
        config: network hyper-parameters; data-dependent fields (covariates, horizon,
            frequency, open rates) are filled in by :meth:`fit`.
        training: a :class:`TrainingConfig`.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        known: known-future covariate columns of the panel to use.
        static: static feature columns of the panel to use.
        batch_size: inference batch size.
        compile: run inference through ``torch.compile`` (one graph: every batch is padded
            to ``batch_size`` rows). The first :meth:`predict` compiles (about a minute on
            a cold cache, seconds on a warm one); where compiling fails, a warning is
            logged and inference runs eagerly.
    """

    def __init__(
        self,
        config: DemandcastConfig | None = None,
        training: TrainingConfig | None = None,
        device: str | torch.device = "auto",
        known: list[str] | None = None,
        static: list[str] | None = None,
        batch_size: int = 512,
        name: str = "transformer",
        compile: bool = False,
    ) -> None:
        self.config = copy.deepcopy(config) if config is not None else DemandcastConfig()
        self.training = training or TrainingConfig()
        self.device = resolve_device(device)
        self.known = list(known) if known is not None else list(self.config.known_covariates)
        self.static = list(static) if static is not None else list(self.config.static_features)
        self.batch_size = batch_size
        self.name = name
        self.compile = compile
        self._compiled: tuple[DemandcastForecaster, Callable[..., Any]] | None = None
        self.model: DemandcastForecaster | None = None
        self.history: list[dict[str, float]] = []
        self.val_loss: float | None = None

    @property
    def quantile_levels(self) -> list[float]:
        return list(self.config.quantile_levels)

    # ----------------------------------------------------------------- persistence
    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device = "auto", batch_size: int = 512
    ) -> TransformerForecaster:
        """Load a directory written by :meth:`save_pretrained` (safetensors + config.json)."""
        model = DemandcastForecaster.from_pretrained(str(path))
        self = cls(model.config, device=device, batch_size=batch_size)
        self.model = torch.nn.Module.to(model, self.device).eval()
        return self

    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (never pickle) into ``path``."""
        model = self._require_model()
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(p), safe_serialization=True)
        return p

    def _require_model(self) -> DemandcastForecaster:
        if self.model is None:
            raise NotFittedError(
                "the transformer forecaster is not trained: call fit(panel) "
                "or load one with TransformerForecaster.from_pretrained"
            )
        return self.model

    # ----------------------------------------------------------------- features
    def _prepare_config(self, panel: Panel, horizon: int) -> None:
        c = self.config
        validate_known(panel, self.known)
        missing_static = [s for s in self.static if s not in panel.static]
        if missing_static:
            raise InputError(
                f"unknown static feature(s) {missing_static}; the table has "
                f"{sorted(panel.static) or 'none'}"
            )
        rates, hol_rate = estimate_open_rates(
            panel.index,
            np.where(panel.observed, panel.target, 0).sum(axis=0),
            panel.freq,
            c.holiday_country,
        )
        c.freq = panel.freq
        c.prediction_length = horizon
        c.open_rate = rates
        c.holiday_open_rate = hol_rate
        c.known_covariates = list(self.known)
        c.static_features = list(self.static)
        names = calendar_feature_names(panel.freq) + list(self.known)
        c.covariate_names = names
        c.num_covariates = len(names)
        c.validate_values()

    def _time_features(self, index: pd.DatetimeIndex) -> np.ndarray:
        c = self.config
        return calendar_features(index, c.freq, c.holiday_country, c.open_rate, c.holiday_open_rate)

    def _extended_index(self, panel: Panel, before: int, after: int) -> pd.DatetimeIndex:
        alias = FREQ_ALIASES[panel.freq]
        start = panel.index[0] - before * pd.tseries.frequencies.to_offset(alias)
        return pd.date_range(start, periods=before + panel.length + after, freq=alias)

    def _static_ids(self, panel: Panel) -> np.ndarray:
        c = self.config
        cols = [
            hash_bucket(panel.static[s].astype(str), c.num_static_buckets, s)
            for s in c.static_features
        ]
        if c.use_series_id:
            cols.append(hash_bucket(panel.series_ids, c.num_static_buckets, "series_id"))
        if not cols:
            return np.zeros((panel.num_series, 0), dtype=np.int64)
        return np.stack(cols, axis=1)

    def _padded_arrays(
        self, panel: Panel, future: Mapping[str, np.ndarray] | None, horizon: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Left-pad by L, right-pad by H: target/observed ``(N, L+T+H)``, time features
        ``(L+T+H, Fc)``, known covariates ``(N, L+T+H, K)``."""
        c = self.config
        L, H = c.context_length, c.prediction_length
        n, t = panel.num_series, panel.length
        target = np.zeros((n, L + t + H), dtype=np.float32)
        observed = np.zeros((n, L + t + H), dtype=np.float32)
        target[:, L : L + t] = np.where(panel.observed, panel.target, 0.0)
        observed[:, L : L + t] = panel.observed
        tf = self._time_features(self._extended_index(panel, L, H))
        known = np.zeros((n, L + t + H, len(c.known_covariates)), dtype=np.float32)
        for k, name in enumerate(c.known_covariates):
            arr = panel.known[name]
            known[:, :L, k] = arr[:, :1]
            known[:, L : L + t, k] = arr
            if future is not None and name in future:
                fut = np.asarray(future[name])[:, :H]
                known[:, L + t : L + t + fut.shape[1], k] = fut
                known[:, L + t + fut.shape[1] :, k] = fut[:, -1:] if fut.shape[1] else 0.0
            else:
                known[:, L + t :, k] = arr[:, -1:]
        return target, observed, tf, known

    def _batch(
        self,
        rows: np.ndarray,
        cuts: np.ndarray,
        target: np.ndarray,
        observed: np.ndarray,
        tf: np.ndarray,
        known: np.ndarray,
        statics: np.ndarray,
        with_future: bool,
    ) -> dict[str, torch.Tensor]:
        """Windows ending at padded position ``cuts`` (exclusive) of series ``rows``."""
        c = self.config
        L, H = c.context_length, c.prediction_length
        offs = np.arange(-L, H)
        win = cuts[:, None] + offs[None, :]
        r = rows[:, None]
        same_cut = bool((cuts == cuts[0]).all())
        if same_cut and not known.shape[2]:
            # inference: one calendar window shared by every series, broadcast (no copy)
            shared = torch.from_numpy(np.ascontiguousarray(tf[win[0]], dtype=np.float32))
            covariates = shared.unsqueeze(0).expand(len(rows), -1, -1)
        else:
            cov = tf[win]
            if known.shape[2]:
                cov = np.concatenate([cov, known[r, win]], axis=2)
            covariates = torch.from_numpy(np.ascontiguousarray(cov, dtype=np.float32))
        if same_cut:
            start = int(cuts[0]) - L
            past = (
                torch.from_numpy(target[rows[0] : rows[-1] + 1, start : start + L])
                if (rows.size and rows[-1] - rows[0] + 1 == rows.size)
                else torch.from_numpy(target[r, win[:, :L]])
            )
            pmask = (
                torch.from_numpy(observed[rows[0] : rows[-1] + 1, start : start + L])
                if (rows.size and rows[-1] - rows[0] + 1 == rows.size)
                else torch.from_numpy(observed[r, win[:, :L]])
            )
        else:
            past = torch.from_numpy(target[r, win[:, :L]])
            pmask = torch.from_numpy(observed[r, win[:, :L]])
        batch = {
            "past_values": past,
            "past_observed_mask": pmask,
            "covariates": covariates,
            "static_ids": torch.from_numpy(statics[rows]),
        }
        if with_future:
            batch["future_values"] = torch.from_numpy(target[r, win[:, L:]])
            batch["future_observed_mask"] = torch.from_numpy(observed[r, win[:, L:]])
        return {k: v.to(self.device) for k, v in batch.items()}

    # ----------------------------------------------------------------- training
    def fit(
        self, panel: Panel, horizon: int | None = None, progress: ProgressFn | None = None
    ) -> TransformerForecaster:
        """Train a global model on random windows of every series of ``panel``.

        Windows end anywhere from a series' first observed period on (so short histories
        are learned too) up to ``T - H``; the last window of ``val_fraction`` of the series
        is held out and its pinball loss reported (``self.val_loss``), keeping the weights
        with the best validation loss. ``progress(step, steps, train_loss, val_loss)`` is
        called after every step.
        """
        tc = self.training
        if panel.num_series == 0 or panel.length == 0:
            raise InputError("cannot train on an empty table")
        if not np.isfinite(np.where(panel.observed, panel.target, 0.0)).all():
            raise InputError("the table has NaN or infinite targets; write 0 for no sales")
        h = horizon or self.config.prediction_length
        self._prepare_config(panel, h)
        c = self.config
        if tc.num_threads > 0 and self.device.type == "cpu":
            torch.set_num_threads(tc.num_threads)
        set_seed(tc.seed)
        rng = np.random.default_rng(tc.seed)
        model = DemandcastForecaster(c)
        if c.backbone == "gpt2" and c.gpt2_path:
            load_gpt2_weights(model, c.gpt2_path)
        torch.nn.Module.to(model, self.device)
        self.model = model

        L, H = c.context_length, c.prediction_length
        n, t = panel.num_series, panel.length
        target, observed, tf, known = self._padded_arrays(panel, None, H)
        statics = self._static_ids(panel)
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

        opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)

        def lr_at(step: int) -> float:
            if step < tc.warmup:
                return (step + 1) / tc.warmup
            frac = (step - tc.warmup) / max(tc.steps - tc.warmup, 1)
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        val_batch = (
            self._batch(
                val_rows,
                np.full(len(val_rows), L + t - H),
                target,
                observed,
                tf,
                known,
                statics,
                True,
            )
            if len(val_rows)
            else None
        )
        best: tuple[float, dict[str, torch.Tensor]] | None = None
        val_loss: float | None = None
        params = [p for p in model.parameters() if p.requires_grad]
        ema = [p.detach().clone() for p in params] if tc.ema_decay > 0 else None
        self.history = []
        autocast = self.device.type == "cuda"
        for step in range(tc.steps):
            model.train()
            pick = rng.choice(len(pair_row), size=tc.batch_size, p=weight)
            batch = self._batch(
                pair_row[pick], pair_cut[pick] + L, target, observed, tf, known, statics, True
            )
            weight_w = window_weights(
                batch["past_values"],
                batch["past_observed_mask"],
                c.season_length,
                tc.volume_weight,
                tc.mase_weight,
            )
            if weight_w is not None:
                batch["sample_weight"] = weight_w
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                out = model(**batch, validate=False)
            assert out.loss is not None
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            train_loss = float(out.loss.detach())
            if ema is not None:
                decay = min(tc.ema_decay, (step + 1) / (step + 10))
                with torch.no_grad():
                    torch._foreach_lerp_(ema, [p.detach() for p in params], 1.0 - decay)
            if val_batch is not None and ((step + 1) % tc.eval_every == 0 or step + 1 == tc.steps):
                model.eval()
                raw = _swap_in(params, ema)
                with (
                    torch.inference_mode(),
                    torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast),
                ):
                    vl = model(**val_batch, validate=False).loss
                val_loss = float(vl) if vl is not None else None
                if val_loss is not None and (best is None or val_loss < best[0]):
                    best = (
                        val_loss,
                        {k: v.detach().clone() for k, v in model.state_dict().items()},
                    )
                _swap_in(params, raw)
            self.history.append(
                {
                    "step": step + 1,
                    "train_loss": train_loss,
                    "val_loss": val_loss if val_loss is not None else float("nan"),
                }
            )
            if progress is not None:
                progress(step + 1, tc.steps, train_loss, val_loss)
        if best is not None:
            model.load_state_dict(best[1])
            self.val_loss = best[0]
        else:
            _swap_in(params, ema)
            self.val_loss = None
        model.eval()
        return self

    # ----------------------------------------------------------------- inference
    def predict(
        self,
        panel: Panel,
        horizon: int | None = None,
        future_known: Mapping[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Quantiles ``(N, horizon, Q)`` for the periods after the panel's last one.

        Series shorter than ``context_length`` (even a single period) are left-padded and
        masked. ``future_known`` must give every known covariate the model uses.
        """
        model = self._require_model()
        c = self.config
        h = horizon or c.prediction_length
        if h > c.prediction_length:
            raise InputError(
                f"this model forecasts at most {c.prediction_length} periods; got horizon={h}. "
                "Retrain with a longer --horizon"
            )
        if panel.num_series == 0 or panel.length == 0:
            raise InputError("the history panel is empty: it needs at least one series and period")
        if panel.freq != c.freq:
            raise InputError(
                f"the model was trained on freq {c.freq!r}, the table is {panel.freq!r}"
            )
        if not np.isfinite(np.where(panel.observed, panel.target, 0.0)).all():
            raise InputError("the history contains NaN or infinite targets; write 0 for no sales")
        validate_known(panel, c.known_covariates)
        for name in c.known_covariates:
            if not np.isfinite(panel.known[name]).all():
                raise CovariateError(f"covariate {name!r} has NaN or infinite values; fill them")
        fut = check_future_known(panel, c.known_covariates, future_known, h)
        target, observed, tf, known = self._padded_arrays(panel, fut, c.prediction_length)
        statics = self._static_ids(panel)
        L = c.context_length
        cut = L + panel.length
        out = np.empty((panel.num_series, h, len(c.quantile_levels)), dtype=np.float32)
        model.eval()
        autocast = self.device.type == "cuda"
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            for s in range(0, panel.num_series, self.batch_size):
                rows = np.arange(s, min(s + self.batch_size, panel.num_series))
                n = len(rows)
                run = self._runner(model)
                if run is not model and n < self.batch_size:  # one shape, one compiled graph
                    rows = np.concatenate([rows, np.full(self.batch_size - n, rows[-1])])
                batch = self._batch(
                    rows, np.full(len(rows), cut), target, observed, tf, known, statics, False
                )
                q = self._run(run, model, batch)
                out[rows[:n]] = q[:n, :h].float().cpu().numpy()
        return out

    def warm_up(self) -> float:
        """Run one full batch of synthetic histories through :meth:`predict` (with
        :attr:`compile`, this builds the graph before real traffic); returns the seconds."""
        from models.bench import synthetic_panel  # models.bench imports this module

        c = self.config
        n, h = self.batch_size, c.prediction_length
        panel = synthetic_panel(
            n, c.context_length, freq=c.freq, known=c.known_covariates, static=c.static_features
        )
        t0 = time.perf_counter()
        self.predict(panel, h, {k: np.ones((n, h)) for k in c.known_covariates})
        return time.perf_counter() - t0

    def _runner(self, model: DemandcastForecaster) -> Callable[..., Any]:
        """``model``, or its ``torch.compile``'d twin when :attr:`compile` is set."""
        if not self.compile:
            return model
        if self._compiled is None or self._compiled[0] is not model:
            self._compiled = (model, torch.compile(model, dynamic=False))
        return self._compiled[1]

    def _run(
        self, run: Callable[..., Any], model: DemandcastForecaster, batch: dict[str, Any]
    ) -> torch.Tensor:
        """One batch's quantiles; a compiled graph that fails to build falls back to eager."""
        if run is not model:
            # the compiled graph is specialised on strides: the history rows are views of a
            # (N, L + T) array, so a table of another length would recompile; the broadcast
            # calendar (stride 0) keeps its layout
            batch = {
                k: v.contiguous() if isinstance(v, torch.Tensor) and v.stride(0) else v
                for k, v in batch.items()
            }
        try:
            q = run(**batch, validate=False).quantiles  # inputs checked in predict
        except Exception as exc:
            if run is model:
                raise
            log.warning(
                "torch.compile failed (%s: %s); inference runs eagerly", type(exc).__name__, exc
            )
            self.compile, self._compiled = False, None
            q = model(**batch, validate=False).quantiles
        assert q is not None
        return q


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


def training_summary(f: TransformerForecaster, seconds: float) -> dict[str, Any]:
    """JSON-able facts about a fit (for registry metadata)."""
    return {
        "training": asdict(f.training),
        "val_loss": f.val_loss,
        "train_seconds": seconds,
        "device": str(f.device),
    }


def timed_fit(
    f: TransformerForecaster, panel: Panel, horizon: int, progress: ProgressFn | None = None
) -> float:
    """Fit and return wall seconds."""
    t0 = time.perf_counter()
    f.fit(panel, horizon, progress)
    return time.perf_counter() - t0


__all__ = [
    "TrainingConfig",
    "TransformerForecaster",
    "resolve_device",
    "set_seed",
    "timed_fit",
    "training_summary",
    "window_weights",
]
