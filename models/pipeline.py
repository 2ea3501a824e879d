"""Pipeline (layer 4): panels in, quantile forecasts out; inference, loading, devices.

:class:`TransformerForecaster` implements the :class:`~models.baselines.Forecaster`
protocol around :class:`~models.modeling.DemandcastForecaster`: it turns a
:class:`~models.data.Panel` into model tensors (history windows, calendar / holiday / open
covariates, known covariates, hashed static ids) and predicts in batches under
``torch.inference_mode`` (bf16 autocast on CUDA). Training — a fresh fit on random windows
with the pinball loss, or a warm start from a fitted forecaster — lives in
:mod:`models.training` and :mod:`models.finetune`; :meth:`TransformerForecaster.fit` and
:meth:`TransformerForecaster.fine_tune` call it.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.config import YEAR_BACK_PERIODS, DemandcastConfig
from models.data import FREQ_ALIASES, Panel, check_future_known, hash_bucket, validate_known
from models.exceptions import CovariateError, InputError, NotFittedError
from models.features import calendar_feature_names, calendar_features, estimate_open_rates
from models.finetune import Trainable, warm_start
from models.modeling import DemandcastForecaster
from models.synthetic import synthetic_panel
from models.training import (  # TrainingConfig ... window_weights: re-exported for callers
    ProgressFn,
    TrainingConfig,
    fit_new,
    set_seed,
    timed_fit,
    training_summary,
    window_weights,
)

log = logging.getLogger(__name__)

#: The seasonal lags' period where the year-back inputs carry the yearly season (by
#: frequency; absent: the season length).
SEASONAL_LAG_PERIODS: dict[str, int] = {"W": 1}


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


def year_back_window(
    target: np.ndarray,
    observed: np.ndarray,
    rows: np.ndarray,
    cuts: np.ndarray,
    context: int,
    horizon: int,
    config: DemandcastConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The year-back inputs of the windows ending at ``cuts`` (exclusive) of ``rows``.

    For each step ``s`` of a window (its ``context`` steps then its ``horizon`` steps), the
    values at ``s - Y + j`` for ``j = -K … K`` (``Y = config.year_back_period``, ``K =
    config.year_back_neighbours``) and their observed mask: 0 (masked, never a zero
    observed) before the padded arrays start, where the series was not observed, and at or
    after the window's origin (nothing from the future). Shapes ``(R, context + horizon,
    2K + 1)`` float32.
    """
    y, k = int(config.year_back_period or 0), config.year_back_neighbours
    offs = np.arange(-context, horizon)[None, :, None] + (np.arange(-k, k + 1) - y)[None, None, :]
    idx = cuts[:, None, None] + offs
    valid = (idx >= 0) & (idx < cuts[:, None, None])
    safe = np.clip(idx, 0, target.shape[1] - 1)
    r = rows[:, None, None]
    mask = np.where(valid, observed[r, safe], 0.0).astype(np.float32)
    values = np.where(mask > 0, target[r, safe], 0.0).astype(np.float32)
    return values, mask


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
        #: how this forecaster was warm-started (``fine_tune``), ``None`` for a fresh fit
        self.warm_start_info: dict[str, Any] | None = None
        #: the realised levels the last calibration measured (``TrainingConfig.calibrate``)
        self.calibration_report: dict[str, Any] | None = None

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
        if c.year_back_period is None:
            c.year_back_period = YEAR_BACK_PERIODS.get(panel.freq, 0)
        if c.seasonal_lag_period is None and c.year_back_period:
            # the yearly signal comes from the year-back inputs: the seasonal lags give the
            # recent weeks' distribution instead (the last-8-weeks quantiles)
            c.seasonal_lag_period = SEASONAL_LAG_PERIODS.get(panel.freq)
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
        if c.year_back_width:
            yb, ybm = year_back_window(target, observed, rows, cuts, L, H, c)
            batch["year_back"] = torch.from_numpy(yb)
            batch["year_back_mask"] = torch.from_numpy(ybm)
        if with_future:
            batch["future_values"] = torch.from_numpy(target[r, win[:, L:]])
            batch["future_observed_mask"] = torch.from_numpy(observed[r, win[:, L:]])
        return {k: v.to(self.device) for k, v in batch.items()}

    # ----------------------------------------------------------------- training
    def fit(
        self, panel: Panel, horizon: int | None = None, progress: ProgressFn | None = None
    ) -> TransformerForecaster:
        """Train a fresh global model on random windows of every series of ``panel``
        (:func:`models.training.fit_new`); returns ``self``.

        Windows end anywhere from a series' first observed period on (so short histories
        are learned too) up to ``T - H``; the last window of ``val_fraction`` of the series
        is held out and its pinball loss reported (``self.val_loss``), keeping the weights
        with the best validation loss. ``progress(step, steps, train_loss, val_loss)`` is
        called after every step.
        """
        fit_new(self, panel, horizon, progress)
        return self

    def fine_tune(
        self,
        panel: Panel,
        *,
        steps: int,
        lr: float,
        trainable: Trainable = "all",
        warmup: int = 0,
        training: TrainingConfig | None = None,
        progress: ProgressFn | None = None,
    ) -> TransformerForecaster:
        """Warm start: a NEW forecaster trained from this one's weights for ``steps`` steps at
        learning rate ``lr`` (after ``warmup`` linear warm-up steps); this one is not changed.

        ``trainable``: ``"all"``, ``"head"``, ``"last_block"`` (the backbone's last block,
        its final norm and the head) or a list of parameter-name prefixes; the other
        parameters keep their values. ``training`` gives the remaining settings (batch size,
        seed, EMA, validation share, ...; default: this forecaster's ``training``). The new
        forecaster keeps this one's frequency, context length, horizon, quantile levels,
        covariates and hashing; a table it cannot serve (another frequency, a known
        covariate or static feature missing) raises. See :func:`models.finetune.warm_start`.
        """
        base = training if training is not None else self.training
        tc = dataclasses.replace(base, steps=steps, lr=lr, warmup=warmup)
        return warm_start(self, panel, tc, trainable, progress)

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
        if c.read_levels is not None:
            from models.calibration import apply_levels

            out = apply_levels(out, c.quantile_levels, c.read_levels)
        return out

    def warm_up(self) -> float:
        """Run one full batch of synthetic histories through :meth:`predict` (with
        :attr:`compile`, this builds the graph before real traffic); returns the seconds."""
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


__all__ = [
    "SEASONAL_LAG_PERIODS",
    "TrainingConfig",
    "TransformerForecaster",
    "resolve_device",
    "set_seed",
    "timed_fit",
    "training_summary",
    "window_weights",
    "year_back_window",
]
