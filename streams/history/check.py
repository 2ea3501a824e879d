"""The consistency check: recompute the bucket features of a log in one linear pass with
pandas (no Redis, none of the streaming code's aggregation) and compare with Redis.

A *bucket* is one (SKU, period) at hourly or daily frequency with every metric in it. A
bucket counts as *matching* when every metric equals the recomputation, *lost* when some
metric is below it and none above, *double-counted* when some metric is above it and none
below, *mismatched* otherwise. Buckets that are empty on both sides are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from schemas import ClickEvent, Event, OrderEvent
from streams.settings import Settings
from streams.store.keys import DAY_MS, HOUR_MS, METRICS, KeyLayout, layout_of
from streams.store.reader import FeatureReader, skus_under

_CLICK_COLUMNS = {"view": "views", "cart": "carts", "purchase": "purchases"}


@dataclass
class CheckResult:
    """Bucket counts per frequency, and a few examples of differences."""

    matching: int = 0
    lost: int = 0
    double_counted: int = 0
    mismatched: int = 0
    skus: int = 0
    by_freq: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.double_counted == 0 and self.mismatched == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "matching": self.matching,
            "lost": self.lost,
            "double_counted": self.double_counted,
            "mismatched": self.mismatched,
            "skus": self.skus,
            "by_freq": self.by_freq,
            "examples": self.examples,
        }


def recompute(events: list[tuple[int, Event]]) -> dict[str, pd.DataFrame]:
    """Expected buckets per frequency: a frame indexed by (sku, period start ms) with one
    integer column per metric (money in thousandths)."""
    dedup: dict[str, tuple[int, Event]] = {}
    for t, e in events:
        dedup.setdefault(e.event_id, (t, e))
    orders = [
        (e.sku, t, e.quantity, e.unit_price) for t, e in dedup.values() if isinstance(e, OrderEvent)
    ]
    clicks = [(e.sku, t, e.action) for t, e in dedup.values() if isinstance(e, ClickEvent)]
    o = pd.DataFrame(orders, columns=["sku", "t", "q", "price"])
    c = pd.DataFrame(clicks, columns=["sku", "t", "action"])
    pos = o["q"] > 0
    rows = pd.DataFrame(
        {
            "sku": pd.concat([o["sku"], c["sku"]], ignore_index=True),
            "t": pd.concat([o["t"], c["t"]], ignore_index=True).astype("int64"),
        }
    )
    n_o = len(o)
    zeros = np.zeros(len(rows), dtype=np.int64)
    cols: dict[str, np.ndarray] = {m: zeros.copy() for m in METRICS}
    q = o["q"].to_numpy(dtype=np.int64)
    price = o["price"].to_numpy(dtype=np.float64)
    p = pos.to_numpy()
    cols["units"][:n_o] = np.where(p, q, 0)
    cols["revenue_milli"][:n_o] = np.where(p, np.floor(q * price * 1000.0 + 0.5), 0).astype(
        np.int64
    )
    cols["lines"][:n_o] = p.astype(np.int64)
    cols["cancel_units"][:n_o] = np.where(p, 0, -q)
    cols["cancel_lines"][:n_o] = (~p).astype(np.int64)
    cols["price_max_milli"][:n_o] = np.where(p, np.floor(price * 1000.0 + 0.5), -1).astype(np.int64)
    cols["price_max_milli"][n_o:] = -1
    actions = c["action"].to_numpy()
    for action, metric in _CLICK_COLUMNS.items():
        cols[metric][n_o:] = (actions == action).astype(np.int64)
    frame = rows.assign(**cols)
    out = {}
    for freq, step in (("h", HOUR_MS), ("D", DAY_MS)):
        frame["period"] = frame["t"] // step * step
        agg = {m: ("max" if m == "price_max_milli" else "sum") for m in METRICS}
        grouped = frame.groupby(["sku", "period"]).agg(agg)
        grouped["price_max_milli"] = grouped["price_max_milli"].clip(lower=0)
        # a bucket holding only remove_from_cart clicks has no metric at all
        out[freq] = grouped[(grouped[list(METRICS)] != 0).any(axis=1)]
    return out


def compare(
    expected: dict[str, pd.DataFrame],
    reader: FeatureReader,
    *,
    extra_skus: set[str] | None = None,
    chunk: int = 200,
    max_examples: int = 10,
) -> CheckResult:
    """Compare the recomputed buckets with the store's, SKU chunk by chunk."""
    result = CheckResult()
    all_skus = set(extra_skus or ())
    for frame in expected.values():
        all_skus.update(frame.index.get_level_values("sku").unique())
    skus = sorted(all_skus)
    result.skus = len(skus)
    for freq, frame in expected.items():
        step = HOUR_MS if freq == "h" else DAY_MS
        counts = {"matching": 0, "lost": 0, "double_counted": 0, "mismatched": 0}
        if frame.empty and not skus:
            result.by_freq[freq] = counts
            continue
        periods = frame.index.get_level_values("period")
        lo = int(periods.min()) if len(periods) else 0
        hi = int(periods.max()) + step if len(periods) else step
        start = datetime.fromtimestamp(lo / 1000, tz=UTC)
        end = datetime.fromtimestamp(hi / 1000, tz=UTC)
        for i in range(0, len(skus), chunk):
            part = skus[i : i + chunk]
            got = reader.buckets(part, start, end, freq)  # type: ignore[arg-type]
            actual = np.rint(_to_milli_array(got.values, got.metrics)).astype(np.int64)
            want = np.zeros_like(actual)
            sub = frame[frame.index.get_level_values("sku").isin(part)]
            if not sub.empty:
                sku_idx = pd.Index(part).get_indexer(sub.index.get_level_values("sku"))
                t_idx = (sub.index.get_level_values("period").to_numpy() - lo) // step
                want[sku_idx, t_idx, :] = sub[list(got.metrics)].to_numpy(dtype=np.int64)
            nonempty = (want != 0).any(axis=2) | (actual != 0).any(axis=2)
            below = (actual < want).any(axis=2) & nonempty
            above = (actual > want).any(axis=2) & nonempty
            counts["matching"] += int((nonempty & ~below & ~above).sum())
            counts["lost"] += int((below & ~above).sum())
            counts["double_counted"] += int((above & ~below).sum())
            counts["mismatched"] += int((above & below).sum())
            for si, ti in zip(*np.nonzero(below | above), strict=True):
                if len(result.examples) >= max_examples:
                    break
                result.examples.append(
                    {
                        "freq": freq,
                        "sku": part[si],
                        "period": datetime.fromtimestamp(
                            (lo + int(ti) * step) / 1000, tz=UTC
                        ).isoformat(),
                        "expected": dict(zip(got.metrics, want[si, ti].tolist(), strict=True)),
                        "redis": dict(zip(got.metrics, actual[si, ti].tolist(), strict=True)),
                    }
                )
        result.by_freq[freq] = counts
        for name, value in counts.items():
            setattr(result, name, getattr(result, name) + value)
    return result


def _to_milli_array(values: np.ndarray, metrics: tuple[str, ...]) -> np.ndarray:
    out = values.copy()
    for j, m in enumerate(metrics):
        if m.endswith("_milli"):
            out[:, :, j] *= 1000.0
    return out


def store_skus(client: Any, layout: KeyLayout) -> set[str]:
    """Every SKU with a daily bucket key in the store (SCAN)."""
    return skus_under(client, layout.daily_prefix)


def check_log(
    settings: Settings,
    log: Path,
    fmt: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> CheckResult:
    """Load the log as ``replay`` would, recompute, and compare with Redis."""
    import redis

    from streams.history.replay import load_events

    loaded = load_events(log, fmt, start=start, end=end, limit=limit)
    expected = recompute(loaded.events)
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    try:
        layout = layout_of(settings)
        reader = FeatureReader(client, layout)
        return compare(expected, reader, extra_skus=store_skus(client, layout))
    finally:
        client.close()
