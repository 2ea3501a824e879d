"""Synthetic demand panels for benchmarks, warm-ups and tests (numpy and pandas only).

Kept apart from :mod:`models.bench` and :mod:`models.pipeline` so that both can use it
without importing each other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.data import FREQ_ALIASES, Panel


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


__all__ = ["synthetic_panel"]
