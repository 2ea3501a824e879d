"""demandcast's forecasting models: tensors in, forecasts out (no Kafka, Redis or settings).

Layered like chronos — ``config`` → ``layers`` → ``modeling`` → ``pipeline`` — plus
``data`` (UCI cleaning rules, long tables, panels), ``features`` (calendar / holiday
covariates), ``training`` (the trainer) and ``finetune`` (warm starts), ``baselines`` (the
:class:`Forecaster` protocol and statistical baselines), ``metrics`` (primitive metrics),
``evaluation`` (scoring forecasts at their origins), ``backtest``, ``registry``, ``bench``
and ``synthetic`` (synthetic panels).

Importing ``models`` is cheap: the public names below are loaded on first use, so
``from models.data import clean_uci_lines`` never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DemandcastConfig": "models.config",
    "DemandcastForecaster": "models.modeling",
    "ForecastOutput": "models.modeling",
    "TransformerForecaster": "models.pipeline",
    "TrainingConfig": "models.training",
    "Forecaster": "models.baselines",
    "SeasonalNaive": "models.baselines",
    "SeasonalNaiveBand": "models.baselines",
    "ZeroForecast": "models.baselines",
    "MovingAverage": "models.baselines",
    "ExponentialSmoothing": "models.baselines",
    "SeasonalEmpiricalQuantiles": "models.baselines",
    "default_baselines": "models.baselines",
    "Panel": "models.data",
    "read_long_table": "models.data",
    "read_uci_log": "models.data",
    "uci_to_long": "models.data",
    "run_backtest": "models.backtest",
    "ModelRegistry": "models.registry",
    "bench_inference": "models.bench",
    "ModelError": "models.exceptions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
