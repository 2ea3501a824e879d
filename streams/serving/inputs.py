"""The forecast worker's inputs: what one batch of SKUs reads from Redis, and the model
inputs derived from it (the history panel and the known covariates)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from streams.alerts.rules import quantile_column
from streams.serving.model_holder import ServingModel
from streams.serving.planning import DAY, WindowWork, day_floor
from streams.store.keys import KeyLayout
from streams.store.reader import FeatureArrays, FeatureReader


@dataclass(frozen=True)
class BatchInputs:
    """What one batch of SKUs read from Redis (see :meth:`InputReader.read`)."""

    arrays: FeatureArrays
    state: dict[str, dict[str, Any]]
    current: np.ndarray
    """Per SKU: no newer window was forecast for it before (see :mod:`streams.serving.worker`)."""
    open_raw: list[Any]
    expect_raw: list[Any]
    hist_raw: list[Any]
    """Per SKU, the raw alert memory (:mod:`streams.alerts.state`): open restock alert,
    the day's expectation, the deviation history."""


class InputReader:
    """Reads everything a batch needs from Redis: features, state and the alert memory."""

    def __init__(self, reader: FeatureReader, redis: Any, layout: KeyLayout) -> None:
        self.reader = reader
        self.redis = redis
        self.layout = layout

    def read(self, model: ServingModel, work: WindowWork, skus: list[str]) -> BatchInputs:
        """The context of ``model`` before ``work``'s day, in two round trips."""
        end_day = day_floor(work.window.end)
        start_day = end_day - model.context_length * DAY
        arrays, state = self.reader.window_inputs(skus, start_day, end_day, at=work.window.end)
        layout = self.layout
        pipe = self.redis.pipeline(transaction=False)
        for key in (
            layout.newest_windows,
            layout.open_restocks,
            layout.day_expectations,
            layout.deviations,
        ):
            pipe.hmget(key, skus)
        newest_raw, open_raw, expect_raw, hist_raw = pipe.execute()
        end_ms = work.end_ms
        current = np.array([raw is None or int(raw) <= end_ms for raw in newest_raw], dtype=bool)
        return BatchInputs(arrays, state, current, open_raw, expect_raw, hist_raw)


@dataclass(frozen=True)
class ModelInputs:
    """A batch as the model takes it."""

    panel: Any
    """The daily ``units`` history (:class:`models.data.Panel`)."""
    future: dict[str, np.ndarray]
    """The known covariates over the horizon."""
    units: np.ndarray
    end_day: datetime
    """The start of the window's day: the first forecast step."""


def model_inputs(
    model: ServingModel, work: WindowWork, skus: list[str], inputs: BatchInputs
) -> ModelInputs:
    """The panel of ``skus`` over the model's context before ``work``'s day, with the known
    covariates the model takes."""
    import pandas as pd

    from models.data import Panel

    end_day = day_floor(work.window.end)
    start_day = end_day - model.context_length * DAY
    arrays, state = inputs.arrays, inputs.state
    units = arrays.metric("units")
    seen = np.cumsum(units > 0, axis=1) > 0
    index = pd.date_range(start_day.replace(tzinfo=None), periods=units.shape[1], freq="D")
    known, future = known_covariates(
        model, skus, state, units, arrays.metric("revenue_milli"), end_day
    )
    panel = Panel(
        series_ids=list(skus),
        index=index,
        freq="D",
        target=units,
        observed=seen | ~seen.any(axis=1, keepdims=True),
        known=known,
    )
    return ModelInputs(panel, future, units, end_day)


def known_covariates(
    model: ServingModel,
    skus: list[str],
    state: dict[str, dict[str, Any]],
    units: np.ndarray,
    revenue: np.ndarray,
    end_day: datetime,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """History and future values of the model's known covariates, from the store.

    Supported:

    - ``price_rel``: the day's mean unit price (revenue / units) over the SKU's median
      daily price in the context (1.0 on days without sales), as ``models.data`` builds
      it for training; the future holds the last price seen;
    - ``promo_flag`` and ``promo_depth``: promotions active now, until their planned end
      (their history is not kept, so the past is 0).
    """
    n, h = len(skus), model.horizon
    known: dict[str, np.ndarray] = {}
    future: dict[str, np.ndarray] = {}
    for name in model.known:
        past = np.zeros(units.shape)
        ahead = np.zeros((n, h))
        if name == "price_rel":
            _price_rel(skus, state, units, revenue, past, ahead)
        elif name in ("promo_flag", "promo_depth"):
            _promotion(name, skus, state, end_day, ahead)
        else:
            raise ValueError(
                f"model {model.version} needs known covariate {name!r}, which the "
                "forecast worker cannot derive from the feature store (it supplies "
                "price_rel, promo_flag and promo_depth)"
            )
        known[name] = past
        future[name] = ahead
    return known, future


def _price_rel(
    skus: list[str],
    state: dict[str, dict[str, Any]],
    units: np.ndarray,
    revenue: np.ndarray,
    past: np.ndarray,
    ahead: np.ndarray,
) -> None:
    """Fill ``past`` and ``ahead`` with ``price_rel`` (see :func:`known_covariates`)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        price = np.where(units > 0, revenue / np.maximum(units, 1), np.nan)
    for i, sku in enumerate(skus):
        sold = price[i][np.isfinite(price[i])]
        ref = float(np.median(sold)) if sold.size else None
        if not ref:
            past[i], ahead[i] = 1.0, 1.0
            continue
        past[i] = np.where(np.isfinite(price[i]), price[i] / ref, 1.0)
        last = state[sku]["last_price"]
        ahead[i] = last / ref if last else 1.0


def _promotion(
    name: str,
    skus: list[str],
    state: dict[str, dict[str, Any]],
    end_day: datetime,
    ahead: np.ndarray,
) -> None:
    """Fill ``ahead`` with ``promo_flag`` or ``promo_depth`` (see :func:`known_covariates`)."""
    h = ahead.shape[1]
    for i, sku in enumerate(skus):
        for promo in state[sku]["promotions"]:
            days = (promo["planned_end"] - end_day) / DAY
            span = max(0, min(h, int(np.ceil(days))))
            value = 1.0 if name == "promo_flag" else promo["depth"]
            ahead[i, :span] = np.maximum(ahead[i, :span], value)


def without_promotions(
    model: ServingModel,
    panel: Any,
    future: dict[str, np.ndarray],
    state: dict[str, dict[str, Any]],
    skus: list[str],
) -> np.ndarray | None:
    """Day-0 median demand with the future promotion covariates set to 0: what the
    model expects without the promotion (None when the model takes no promotion input
    or nothing is promoted)."""
    promo_inputs = [name for name in ("promo_flag", "promo_depth") if name in model.known]
    if not promo_inputs or not any(state[sku]["promotions"] for sku in skus):
        return None
    plain = {k: (np.zeros_like(v) if k in promo_inputs else v) for k, v in future.items()}
    q = model.predict(panel, plain)
    return np.asarray(q[:, 0] @ quantile_column(model.quantile_levels, 0.5))
