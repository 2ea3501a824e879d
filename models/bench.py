"""Inference throughput benchmark: random histories, the serving configuration, one device.

Measures series per second of :meth:`TransformerForecaster.predict` end to end (feature
building included) for ``N`` series, and the process's peak resident memory.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.config import DemandcastConfig
from models.data import FREQ_ALIASES, Panel
from models.pipeline import TransformerForecaster


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (``ru_maxrss``)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def synthetic_panel(
    num_series: int,
    length: int,
    seed: int = 0,
    freq: str = "D",
    known: list[str] | None = None,
    static: list[str] | None = None,
) -> Panel:
    """Intermittent Poisson-like demand ``(num_series, length)`` with a weekly pattern, for
    benchmarks and tests; ``known`` covariates are 1.0, ``static`` features ``"x"``."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.6, 4.0, size=(num_series, 1))
    weekly = np.array([1.2, 1.1, 1.0, 1.1, 0.9, 0.0, 0.7])
    index = pd.date_range("2024-01-01", periods=length, freq=FREQ_ALIASES[freq])
    season = weekly[np.asarray(index.day_of_week)][None, :]
    target = rng.poisson(rate * season).astype(np.float64)
    observed = np.ones_like(target, dtype=bool)
    return Panel(
        [f"sku{i}" for i in range(num_series)],
        index,
        freq,
        target,
        observed,
        {k: np.ones_like(target) for k in known or []},
        {k: np.full(num_series, "x") for k in static or []},
    )


def bench_inference(
    forecaster: TransformerForecaster | None = None,
    num_series: int = 10_000,
    repeats: int = 5,
    config: DemandcastConfig | None = None,
) -> dict[str, Any]:
    """Time ``predict`` on ``num_series`` random series; return the JSON-able result.

    With ``forecaster.compile``, the graph is built by the untimed warm-up call
    (``compile_s``: that call's seconds). Without ``forecaster`` a random-initialised model
    of the serving configuration (``config`` or the default) is used: throughput does not
    depend on the weights.
    """
    if forecaster is None:
        from models.modeling import DemandcastForecaster
        from models.pipeline import TransformerForecaster as TF

        forecaster = TF(config or DemandcastConfig(), batch_size=512)
        panel0 = synthetic_panel(8, forecaster.config.context_length + 2)
        forecaster._prepare_config(panel0, forecaster.config.prediction_length)
        model = DemandcastForecaster(forecaster.config)
        forecaster.model = torch.nn.Module.to(model, forecaster.device).eval()
    c = forecaster.config
    panel = synthetic_panel(
        num_series,
        c.context_length,
        freq=c.freq,
        known=list(c.known_covariates),
        static=list(c.static_features),
    )
    future = {k: np.ones((num_series, c.prediction_length)) for k in c.known_covariates}
    t0 = time.perf_counter()
    forecaster.predict(panel, c.prediction_length, future)  # warm-up (and compile)
    warm_up_s = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        q = forecaster.predict(panel, c.prediction_length, future)
        best = min(best, time.perf_counter() - t0)
    assert q.shape[0] == num_series
    return {
        "series": num_series,
        "series_per_s": round(num_series / best, 1),
        "seconds": round(best, 4),
        "device": str(forecaster.device),
        "batch_size": forecaster.batch_size,
        "context_length": c.context_length,
        "horizon": c.prediction_length,
        "compiled": forecaster.compile,
        "compile_s": round(warm_up_s, 1) if forecaster.compile else 0.0,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


__all__ = ["bench_inference", "peak_rss_mb", "synthetic_panel"]
