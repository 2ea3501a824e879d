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
import torch

from models.config import DemandcastConfig
from models.pipeline import TransformerForecaster
from models.synthetic import synthetic_panel  # also re-exported: older callers import it here


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (``ru_maxrss``)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


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
