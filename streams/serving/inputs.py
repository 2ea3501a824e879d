"""The forecast worker's inputs: what one batch of SKUs reads from Redis, and the model
inputs derived from it (the history panel and the known covariates)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from models.covariates import SERVED_KNOWN, ref_periods
from models.exceptions import CovariateError
from streams.alerts.rules import quantile_column
from streams.serving.model_holder import ServingModel
from streams.serving.planning import DAY, WindowWork, day_floor
from streams.store.keys import DAY_MS, KeyLayout, epoch_ms
from streams.store.reader import FeatureArrays, FeatureReader

PROMOTION_INPUTS: tuple[str, ...] = ("promo_flag", "promo_depth", "display_share", "mailer_share")
"""The known covariates derived from the promotions in the store."""


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
        start_day = end_day - (model.context_length + lookback_days(model)) * DAY
        arrays, state = self.reader.window_inputs(
            skus,
            start_day,
            end_day,
            at=work.window.end,
            planned_until=end_day + model.horizon * DAY,
        )
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


def lookback_days(model: ServingModel) -> int:
    """Days read before the context: the trailing reference of ``price_rel`` needs them."""
    return ref_periods("D") if "price_rel" in model.known else 0


@dataclass(frozen=True)
class ForecastBatch:
    """One batch's forecasts and what the alert rules read with them."""

    model: ServingModel
    work: WindowWork
    skus: list[str]
    quantiles: np.ndarray
    """Shape ``(len(skus), horizon, len(model.quantile_levels))``."""
    baseline_median: np.ndarray | None
    """Day-0 median demand without the active promotions (None when the model has no
    promotion input: then the forecast itself is the baseline)."""
    units: np.ndarray
    """The daily ``units`` history of the model's context."""
    inputs: BatchInputs


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
    read = arrays.metric("units")
    units = read[:, read.shape[1] - model.context_length :]
    seen = np.cumsum(units > 0, axis=1) > 0
    index = pd.date_range(start_day.replace(tzinfo=None), periods=units.shape[1], freq="D")
    known, future = known_covariates(
        model, skus, state, read, arrays.metric("revenue_milli"), end_day
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
    """History (the last ``model.context_length`` days of ``units``) and future values of
    the model's known covariates, from the store, by the definitions of
    :mod:`models.covariates` that the table builder uses too:

    - ``price_rel``: ``units`` and ``revenue`` (currency units) hold
      :func:`lookback_days` more days than the context, for the trailing reference price;
      the future holds the last price seen over the reference at the origin;
    - ``promo_flag`` and ``promo_depth``, ``display_share`` and ``mailer_share``: the days
      the planned intervals of the promotions overlap, in the context and over the horizon
      (the state's ``planned_promotions``: every promotion not ended whose plan overlaps
      them, so a mailer planned for next week is known today; else those active now).
    """
    from models.covariates import (
        SHARE_COVARIATES,
        PlannedPromotion,
        price_rel,
        price_rel_ahead,
        promotion_covariates,
        promotion_shares,
    )

    h, c = model.horizon, model.context_length
    known: dict[str, np.ndarray] = {}
    future: dict[str, np.ndarray] = {}
    if "price_rel" in model.known:
        lookback = ref_periods("D")
        known["price_rel"] = price_rel(units, revenue, lookback)[:, -c:]
        last = [state[sku]["last_price"] for sku in skus]
        ahead = price_rel_ahead(units, revenue, last, lookback)
        future["price_rel"] = np.repeat(ahead[:, None], h, axis=1)
    if set(PROMOTION_INPUTS) & set(model.known):
        promos = [
            [
                PlannedPromotion(
                    epoch_ms(p["planned_start"]),
                    epoch_ms(p["planned_end"]),
                    p["depth"],
                    p.get("kind", "price_cut"),
                    p.get("store_share", 1.0),
                )
                for p in state[sku].get("planned_promotions", state[sku]["promotions"])
            ]
            for sku in skus
        ]
        first_ms = epoch_ms(end_day - c * DAY)
        flag, depth = promotion_covariates(promos, first_ms, DAY_MS, c + h)
        values_of = {"promo_flag": flag, "promo_depth": depth}
        if set(SHARE_COVARIATES) & set(model.known):
            values_of.update(promotion_shares(promos, first_ms, DAY_MS, c + h))
        for name, values in values_of.items():
            if name in model.known:
                known[name], future[name] = values[:, :c], values[:, c:]
    missing = [name for name in model.known if name not in known]
    if missing:
        raise CovariateError(
            f"model {model.version} needs known covariates {missing}, which the forecast "
            f"worker cannot derive from the feature store (it supplies {sorted(SERVED_KNOWN)})"
        )
    return {k: known[k] for k in model.known}, {k: future[k] for k in model.known}


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
    promo_inputs = [name for name in PROMOTION_INPUTS if name in model.known]
    if not promo_inputs or not any(state[sku]["promotions"] for sku in skus):
        return None
    plain = {k: (np.zeros_like(v) if k in promo_inputs else v) for k, v in future.items()}
    q = model.predict(panel, plain)
    return np.asarray(q[:, 0] @ quantile_column(model.quantile_levels, 0.5))
