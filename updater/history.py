"""The updater's read of the feature store: event time, the training panel, promotions.

Event time is the stream worker's watermark (``{p}:wm``, one entry per ``topic:partition``):
the updater's "now" is the smallest watermark of the orders topic, so a decision never
looks past what every partition has seen. The panel holds the daily ``units`` of the SKUs
with most units over ``[start, end)`` (whole UTC days before the watermark's day), read
through :class:`streams.store.reader.FeatureReader`; ``price_rel`` is derived from the
revenue the way the forecast worker derives it. :meth:`History.fingerprint` identifies the
data a candidate was trained and judged on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from models.data import Panel
from streams.serving.planning import day_floor
from streams.store.keys import KeyLayout
from streams.store.reader import FeatureReader, skus_under
from updater.exceptions import NotEnoughHistoryError

DAY = timedelta(days=1)


def event_time(client: Any, layout: KeyLayout, topic: str) -> datetime | None:
    """The smallest watermark of ``topic``'s partitions (None before any event)."""
    raw = client.hgetall(layout.watermarks)
    marks = [
        int(v)
        for k, v in raw.items()
        if (k.decode() if isinstance(k, bytes) else k).rpartition(":")[0] == topic
    ]
    return datetime.fromtimestamp(min(marks) / 1000, tz=UTC) if marks else None


def store_skus(client: Any, layout: KeyLayout) -> list[str]:
    """Every SKU with a daily series in the store (``{p}:dy:{sku}:{YYYY}``), sorted."""
    return sorted(skus_under(client, layout.daily_series_prefix))


def price_rel(units: np.ndarray, revenue: np.ndarray) -> np.ndarray:
    """The day's unit price over the SKU's median daily price in the range (1 on days
    without sales), as the forecast worker builds it."""
    with np.errstate(invalid="ignore", divide="ignore"):
        price = np.where(units > 0, revenue / np.maximum(units, 1), np.nan)
    out = np.ones(units.shape)
    for i in range(units.shape[0]):
        sold = price[i][np.isfinite(price[i])]
        ref = float(np.median(sold)) if sold.size else 0.0
        if ref:
            out[i] = np.where(np.isfinite(price[i]), price[i] / ref, 1.0)
    return out


@dataclass(frozen=True)
class History:
    """The daily panel of the updater's SKUs over ``[start, end)``."""

    panel: Panel
    start: datetime
    end: datetime

    def fingerprint(self) -> str:
        return self.panel.fingerprint()

    def data_range(self) -> dict[str, Any]:
        return {
            "start": self.start.date().isoformat(),
            "end": (self.end - DAY).date().isoformat(),
            "num_series": self.panel.num_series,
            "fingerprint": self.fingerprint(),
        }


def read_history(
    client: Any,
    layout: KeyLayout,
    start: datetime,
    end: datetime,
    *,
    top: int,
    known: Sequence[str] = (),
) -> History:
    """The daily history of the ``top`` SKUs with most units in ``[start, end)``.

    The panel starts on the first day with a sale (``History.start``); a SKU is observed
    from its first sale on; ``known`` may name ``price_rel`` (and
    ``promo_flag`` / ``promo_depth``, whose history the store does not keep: zeros).
    """
    skus = store_skus(client, layout)
    if not skus:
        raise NotEnoughHistoryError(
            f"the feature store under prefix {layout.prefix!r} holds no daily series: start "
            "the stream worker (`demandcast worker`) and replay or stream orders first"
        )
    reader = FeatureReader(client, layout)
    arrays, _ = reader.window_inputs(skus, start, end, at=end)
    units = arrays.metric("units")
    totals = units.sum(axis=1)
    order = np.argsort(-totals, kind="stable")[:top]
    order = order[totals[order] > 0]
    if order.size == 0:
        raise NotEnoughHistoryError(
            f"no sales between {start.date()} and {end.date()} in the feature store"
        )
    order = np.sort(order)
    units = units[order]
    revenue = arrays.metric("revenue_milli")[order]
    seen = np.cumsum(units > 0, axis=1) > 0
    first = int(np.argmax(seen.any(axis=0)))  # days before the store's first sale say nothing
    if first:
        start += first * DAY
        units, revenue, seen = units[:, first:], revenue[:, first:], seen[:, first:]
    covariates: dict[str, np.ndarray] = {}
    for name in known:
        if name == "price_rel":
            covariates[name] = price_rel(units, revenue)
        elif name in ("promo_flag", "promo_depth"):
            covariates[name] = np.zeros(units.shape)
        else:
            raise NotEnoughHistoryError(
                f"the champion needs known covariate {name!r}, which the feature store does "
                "not provide (it gives price_rel, promo_flag, promo_depth)"
            )
    index = pd.date_range(start.replace(tzinfo=None), periods=units.shape[1], freq="D")
    panel = Panel(
        series_ids=[skus[i] for i in order],
        index=index,
        freq="D",
        target=units.astype(np.float64),
        observed=seen,
        known=covariates,
    )
    return History(panel, start, end)


def panel_columns(panel: Panel, lo: int, hi: int) -> Panel:
    """Periods ``[lo, hi)`` of ``panel`` (every series, its known covariates), a copy."""
    cols = slice(lo, hi)
    return Panel(
        series_ids=list(panel.series_ids),
        index=panel.index[cols],
        freq=panel.freq,
        target=panel.target[:, cols].copy(),
        observed=panel.observed[:, cols].copy(),
        known={k: v[:, cols].copy() for k, v in panel.known.items()},
        static=dict(panel.static),
    )


def split_panel(panel: Panel, holdout: int) -> tuple[Panel, Panel]:
    """``panel`` without its last ``holdout`` periods, and those periods alone."""
    if holdout < 1 or holdout >= panel.length:
        raise NotEnoughHistoryError(
            f"{panel.length} days of history cannot hold out {holdout} days and keep some to "
            "train on: lower the horizon or let more event time pass"
        )
    cut = panel.length - holdout
    return panel_columns(panel, 0, cut), panel_columns(panel, cut, panel.length)


def promotion_changes(
    client: Any, layout: KeyLayout, skus: Sequence[str], lo: datetime, hi: datetime
) -> dict[str, list[str]]:
    """Per SKU, the promotions that start or end in ``[lo, hi)`` (ids, from the store's
    promotion state ``{p}:pr:{id}``)."""
    pipe = client.pipeline(transaction=False)
    for sku in skus:
        pipe.smembers(layout.promotions_of_sku(sku))
    ids_of = dict(zip(skus, pipe.execute(), strict=True))
    every = sorted(
        {i.decode() if isinstance(i, bytes) else i for ids in ids_of.values() for i in ids}
    )
    pipe = client.pipeline(transaction=False)
    for pid in every:
        pipe.hgetall(layout.promotion(pid))
    lo_ms, hi_ms = int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)
    changing = set()
    for pid, raw in zip(every, pipe.execute(), strict=True):
        h = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        if not h:
            continue
        edges = [int(h.get("planned_start", -1)), int(h.get("planned_end", -1))]
        if any(lo_ms <= e < hi_ms for e in edges):
            changing.add(pid)
    out: dict[str, list[str]] = {}
    for sku, ids in ids_of.items():
        hits = sorted(
            p for p in (i.decode() if isinstance(i, bytes) else i for i in ids) if p in changing
        )
        if hits:
            out[sku] = hits
    return out


__all__ = [
    "History",
    "day_floor",
    "event_time",
    "price_rel",
    "promotion_changes",
    "read_history",
    "split_panel",
    "store_skus",
]
