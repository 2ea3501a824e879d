"""The serving model: load a registry version (or the baseline) and hold the one that serves,
reloading off the hot path.

:class:`ModelHolder` keeps the model that serves now: a ``ModelUpdate`` or a changed
champion pointer loads the new version on a background thread and swaps it in atomically;
a batch in flight finishes on the model it started with, and a version that fails to load
leaves the old one serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.covariates import SERVED_KNOWN
from models.exceptions import CovariateError

log = logging.getLogger(__name__)

BASELINE_VERSION = "baseline-seasonal-quantiles"
BASELINE_INTERVAL_RHO = 0.40
"""The per-weekday empirical quantiles' own rho, fitted by pinball loss of the 7/14/28-day
totals on the UCI backtest (``docs/intervals.md``, ``seasonal_quantiles``)."""


@dataclass(frozen=True)
class ServingModel:
    """A loaded model and what the worker needs to know about it."""

    version: str
    forecaster: Any
    quantile_levels: list[float]
    context_length: int
    horizon: int
    known: tuple[str, ...] = ()
    needs_fit: bool = False
    """Baselines are fitted on the history of each batch before predicting."""
    interval_rho: float = 0.35
    """Dependence between days of the interval totals restock decisions use
    (:mod:`models.intervals`): the version's stored ``interval_dependence``, else
    ``DEFAULT_DEPENDENCE``."""

    def predict(self, panel: Any, future_known: dict[str, np.ndarray] | None) -> np.ndarray:
        """Quantiles ``(N, horizon, Q)``."""
        if self.needs_fit:
            return np.asarray(self.forecaster.fit(panel).predict(panel, self.horizon))
        return np.asarray(self.forecaster.predict(panel, self.horizon, future_known or None))


def serving_device(device: str) -> str:
    """``cuda`` or ``cpu``: where ``device`` (auto / cpu / cuda) puts the model here."""
    import torch

    if device == "cpu":
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def baseline_model(context_length: int = 56, horizon: int = 28) -> ServingModel:
    """The fallback when the registry has no champion: per-weekday empirical quantiles."""
    from models.baselines import SeasonalEmpiricalQuantiles

    forecaster = SeasonalEmpiricalQuantiles(season=7, seasons=context_length // 7)
    return ServingModel(
        version=BASELINE_VERSION,
        forecaster=forecaster,
        quantile_levels=list(forecaster.quantile_levels),
        context_length=context_length,
        horizon=horizon,
        needs_fit=True,
        interval_rho=BASELINE_INTERVAL_RHO,
    )


def load_version(
    registry_root: Path, version: str | None, device: str, compile: bool = False
) -> ServingModel:
    """Load ``version`` (default: the champion) from the registry as a :class:`ServingModel`;
    with ``compile``, its ``torch.compile``'d graph is built here, before it serves."""
    from models.registry import ModelRegistry

    registry = ModelRegistry(registry_root)
    version = version or registry.champion()
    if version is None:
        return baseline_model()
    forecaster = registry.load(version, device=device)
    config = forecaster.config
    unsupported = sorted(set(config.known_covariates or ()) - SERVED_KNOWN)
    if unsupported:
        raise CovariateError(
            f"model {version} needs known covariates {unsupported} that the forecast worker "
            f"cannot derive from the feature store (it supplies {sorted(SERVED_KNOWN)})"
        )
    if compile:
        forecaster.compile = True
        seconds = forecaster.warm_up()
        log.info("model %s compiled in %.1f s", version, seconds)
    return ServingModel(
        version=version,
        forecaster=forecaster,
        quantile_levels=list(config.quantile_levels),
        context_length=int(config.context_length),
        horizon=int(config.prediction_length),
        known=tuple(config.known_covariates or ()),
        interval_rho=interval_rho(registry.metadata(version)),
    )


def interval_rho(metadata: dict[str, Any]) -> float:
    """The ``rho`` a version's metadata stores (``interval_dependence``), else the default."""
    from models.intervals import DEFAULT_DEPENDENCE, IntervalDependence

    stored = metadata.get("interval_dependence")
    if not stored:
        return DEFAULT_DEPENDENCE.rho
    return IntervalDependence.from_dict(stored).rho


class ModelHolder:
    """The model that serves now; reloads happen off the hot path and swap atomically.

    ``current`` is one attribute read, so a batch that took it keeps using that model even
    if a reload completes meanwhile.
    """

    def __init__(
        self,
        registry_root: Path,
        device: str = "auto",
        loader: Callable[[Path, str | None, str], ServingModel] = load_version,
    ) -> None:
        self.registry_root = registry_root
        self.device = device
        self.loader = loader
        self.last_error: str | None = None
        try:
            self.current: ServingModel = loader(registry_root, None, device)
        except Exception as exc:  # serve the baseline rather than nothing
            self.last_error = f"could not load the champion: {exc}"
            log.error("%s; serving the baseline %s meanwhile", self.last_error, BASELINE_VERSION)
            self.current = baseline_model()
        self.reloads = 0
        self._pointer_mtime = self._pointer_stat()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _pointer_stat(self) -> float | None:
        from models.registry import POINTER

        try:
            return (self.registry_root / POINTER).stat().st_mtime_ns / 1e9
        except OSError:
            return None

    def request(self, version: str | None = None) -> threading.Thread:
        """Load ``version`` (default: the champion) on a background thread, then swap."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._thread.join()
            thread = threading.Thread(
                target=self._load, args=(version,), name="model-reload", daemon=True
            )
            self._thread = thread
            thread.start()
            return thread

    def _load(self, version: str | None) -> None:
        try:
            model = self.loader(self.registry_root, version, self.device)
        except Exception as exc:
            self.last_error = f"could not load model version {version or 'champion'}: {exc}"
            log.error("%s; version %s keeps serving", self.last_error, self.current.version)
            return
        if model.version != self.current.version:
            self.current = model
            self.reloads += 1
            self.last_error = None
            log.info("now serving model version %s", model.version)

    def check_pointer(self) -> threading.Thread | None:
        """Reload when the champion pointer file changed since the last look."""
        mtime = self._pointer_stat()
        if mtime != self._pointer_mtime:
            self._pointer_mtime = mtime
            return self.request(None)
        return None


class ShadowHolder:
    """The version the updater put in shadow (:mod:`models.shadow`), or None.

    :meth:`check` looks at ``shadow.json`` (cheap: its mtime) and loads a new version on a
    background thread; ``current`` is one attribute read, like :class:`ModelHolder`'s. A
    version that fails to load is logged and nothing forecasts in shadow until the pointer
    changes again.
    """

    def __init__(
        self,
        registry_root: Path,
        device: str = "auto",
        loader: Callable[[Path, str | None, str], ServingModel] = load_version,
    ) -> None:
        from models.shadow import ShadowPointer

        self.pointer = ShadowPointer(registry_root)
        self.registry_root = registry_root
        self.device = device
        self.loader = loader
        self.current: ServingModel | None = None
        self.role: str | None = None
        self.last_error: str | None = None
        self._mtime: float | None = -1.0
        self._thread: threading.Thread | None = None

    def check(self) -> threading.Thread | None:
        """Follow the pointer when its file changed since the last look."""
        mtime = self.pointer.mtime()
        if mtime == self._mtime or (self._thread is not None and self._thread.is_alive()):
            return None
        self._mtime = mtime
        thread = threading.Thread(target=self._follow, name="shadow-reload", daemon=True)
        self._thread = thread
        thread.start()
        return thread

    def _follow(self) -> None:
        try:
            shadow = self.pointer.get()
            if shadow is None:
                if self.current is not None:
                    log.info("nothing forecasts in shadow any more")
                self.current, self.role = None, None
                return
            if self.current is None or self.current.version != shadow.version:
                self.current = self.loader(self.registry_root, shadow.version, self.device)
                log.info("model %s forecasts in shadow (%s)", shadow.version, shadow.role)
            self.role, self.last_error = shadow.role, None
        except Exception as exc:
            self.current, self.role = None, None
            self.last_error = f"could not load the shadow model: {exc}"
            log.error("%s; nothing forecasts in shadow", self.last_error)
