"""The feature store's read side: dense ``numpy`` arrays of many SKUs over a time range.

:meth:`FeatureReader.buckets` returns the bucket metrics at hourly or daily frequency,
with zeros where nothing happened; :meth:`FeatureReader.state` the current state of each
SKU; :meth:`FeatureReader.window_inputs` the forecast worker's read of both in one round
trip. The key layout is in ``docs/feature-store.md`` and in
:class:`streams.store.keys.KeyLayout`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

from streams.exceptions import StoreError
from streams.store.keys import (
    DAY_MS,
    HOUR_MS,
    METRICS,
    MILLI_METRICS,
    SERIES_METRICS,
    KeyLayout,
    epoch_ms,
)
from streams.store.plan import series_slot
from streams.store.scripts import SERIES_LUA

Freq = Literal["h", "D"]


@dataclass(frozen=True)
class FeatureArrays:
    """Dense bucket features.

    ``values`` has shape (n_skus, n_periods, n_metrics): ``values[i, t, m]`` is metric
    ``metrics[m]`` of ``skus[i]`` in the period starting at ``periods[t]`` (UTC,
    ``datetime64[ms]``). Money metrics are in currency units (floats), counts are counts;
    zero where nothing happened.
    """

    skus: tuple[str, ...]
    periods: np.ndarray
    metrics: tuple[str, ...]
    values: np.ndarray

    def metric(self, name: str) -> np.ndarray:
        """One metric, shape (n_skus, n_periods)."""
        return self.values[:, :, self.metrics.index(name)]


def _floor(moment: datetime, freq: Freq) -> datetime:
    moment = moment.astimezone(UTC)
    if freq == "h":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _containers(start: datetime, end: datetime) -> list[str]:
    """The month keys ``YYYYMM`` covering [start, end): a bucket hash, hourly or daily,
    holds one month of one SKU."""
    names: list[str] = []
    year, month = start.year, start.month
    while datetime(year, month, 1, tzinfo=UTC) < end:
        names.append(f"{year:04d}{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return names


def _state_row(
    h: dict[str, str], ref_price: float | None, promotions: list[dict[str, Any]]
) -> dict[str, Any]:
    """One SKU's state from its state hash (absent or empty fields are None)."""

    def number(name: str, kind: Any) -> Any:
        raw = h.get(name)
        return kind(raw) if raw else None

    return {
        "last_price": number("last_price", float),
        "ref_price": ref_price,
        "on_hand": number("on_hand", int),
        "on_order": number("on_order", int),
        "lead_time_days": number("lead_time_days", float),
        "promotions": promotions,
    }


@dataclass(frozen=True)
class _Grid:
    """The periods of ``[start, end)`` at ``freq`` and the containers (hashes) covering them."""

    freq: Freq
    lo_ms: int
    step: int
    n_periods: int
    containers: list[str]
    metrics: tuple[str, ...]
    column: dict[str, int]

    @classmethod
    def of(cls, start: datetime, end: datetime, freq: Freq, metrics: Sequence[str]) -> _Grid:
        if freq not in ("h", "D"):
            raise StoreError(f"freq must be 'h' or 'D', not {freq!r}")
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise StoreError(f"unknown metrics {unknown}; known: {', '.join(METRICS)}")
        lo, hi = _floor(start, freq), end.astimezone(UTC)
        step = HOUR_MS if freq == "h" else DAY_MS
        lo_ms = epoch_ms(lo)
        n_periods = max(0, -(-(epoch_ms(hi) - lo_ms) // step))
        return cls(
            freq,
            lo_ms,
            step,
            n_periods,
            _containers(lo, hi) if n_periods else [],
            tuple(metrics),
            {m: j for j, m in enumerate(metrics)},
        )

    def slot(self, suffix: str) -> int:
        """A field's period within its (monthly) container: daily fields end in ``DD``,
        hourly ones in ``DDHH``."""
        if self.freq == "h":
            return 24 * (int(suffix[:2]) - 1) + int(suffix[2:])
        return int(suffix) - 1

    def series_ranges(self) -> list[tuple[str, int, int]]:
        """Per year of a daily grid: ``(YYYY, first byte, last byte)`` of its days in the
        year's daily series (16 bytes a day: ``units`` then ``revenue_milli``)."""
        out: list[tuple[str, int, int]] = []
        for t in range(self.n_periods):
            year, slot = series_slot((self.lo_ms + t * self.step) // DAY_MS)
            if out and out[-1][0] == year:
                out[-1] = (year, out[-1][1], 8 * slot + 15)
            else:
                out.append((year, 8 * slot, 8 * slot + 15))
        return out

    def base(self, container: str) -> int:
        """The period index of the container's first slot (may be negative)."""
        return (_container_start_ms(container) - self.lo_ms) // self.step

    def zeros(self, n_skus: int) -> np.ndarray:
        return np.zeros((n_skus, self.n_periods, len(self.metrics)), dtype=np.float64)

    def arrays(self, skus: Sequence[str], values: np.ndarray) -> FeatureArrays:
        """Money metrics back to currency units, wrapped with their periods."""
        for name, j in self.column.items():
            if name in MILLI_METRICS:
                values[:, :, j] /= 1000.0
        periods = (np.arange(self.n_periods, dtype=np.int64) * self.step + self.lo_ms).astype(
            "datetime64[ms]"
        )
        return FeatureArrays(tuple(skus), periods, self.metrics, values)


class FeatureReader:
    """Batched reads of the feature store over a synchronous ``redis.Redis`` client.

    :meth:`buckets` and :meth:`state` are the plain reads (pipelined ``HGETALL``);
    :meth:`window_inputs` is the forecast worker's read: the same buckets and state of
    thousands of SKUs, scanned inside Redis by ``lua/series.lua`` in one round trip.
    """

    def __init__(
        self, client: Any, layout: KeyLayout, *, chunk: int = 2000, script_skus: int = 1000
    ) -> None:
        self.client = client
        self.layout = layout
        self.chunk = chunk
        self.script_skus = script_skus
        self._series_script: Any = None

    def buckets(
        self,
        skus: Sequence[str],
        start: datetime,
        end: datetime,
        freq: Freq = "h",
        metrics: Sequence[str] = METRICS,
    ) -> FeatureArrays:
        """Dense features of ``skus`` for the periods in ``[start, end)`` at ``freq``."""
        grid = _Grid.of(start, end, freq, metrics)
        values = grid.zeros(len(skus))
        requests = [(i, c) for i in range(len(skus)) for c in grid.containers]
        for lo_req in range(0, len(requests), self.chunk):
            part = requests[lo_req : lo_req + self.chunk]
            pipe = self.client.pipeline(transaction=False)
            for i, c in part:
                key = (
                    self.layout.hourly(skus[i], c) if freq == "h" else self.layout.daily(skus[i], c)
                )
                pipe.hgetall(key)
            for (i, c), fields in zip(part, pipe.execute(), strict=True):
                if not fields:
                    continue
                base = grid.base(c)
                for raw_field, raw_value in fields.items():
                    name, _, suffix = raw_field.decode().partition(":")
                    j = grid.column.get(name)
                    if j is None:
                        continue
                    t = base + grid.slot(suffix)
                    if 0 <= t < grid.n_periods:
                        values[i, t, j] = float(raw_value)
        return grid.arrays(skus, values)

    def window_inputs(
        self,
        skus: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        at: datetime | None = None,
        planned_until: datetime | None = None,
    ) -> tuple[FeatureArrays, dict[str, dict[str, Any]]]:
        """The daily ``units`` and ``revenue_milli`` of ``skus`` in ``[start, end)`` (as
        :meth:`buckets` returns them) and their :meth:`state` at ``at`` (without the reference
        price), in one round trip (and one more for the promotions). The state also has
        ``planned_promotions``: every promotion of the SKU not ended whose planned interval
        overlaps ``[start, planned_until)`` (default ``end``) — the context and the horizon:
        a promotion planned for next week is known today.

        Reads the dense daily series (``{p}:dy:{sku}:{YYYY}``) with ``lua/series.lua``,
        ``script_skus`` SKUs per call (so one call never holds Redis for long), every call in
        one pipeline.
        """
        grid = _Grid.of(start, end, "D", SERIES_METRICS)
        if self._series_script is None:
            self._series_script = self.client.register_script(SERIES_LUA)
        head: list[str | int] = [self.layout.daily_series_prefix]
        ranges = grid.series_ranges()
        head.append(len(ranges))
        for year, first, last in ranges:
            head += [year, first, last]
        head += [self.layout.state_prefix, self.layout.promotions_of_sku_prefix]
        pipe = self.client.pipeline(transaction=False)
        for lo in range(0, len(skus), self.script_skus):
            part = skus[lo : lo + self.script_skus]
            self._series_script(keys=[], args=[*head, *part], client=pipe)
        chunks: list[bytes] = []
        rows: list[bytes] = []
        for cells, states in pipe.execute():
            chunks += cells
            rows += states
        raw = np.frombuffer(b"".join(chunks), dtype=">i8")
        values = raw.astype(np.float64).reshape(len(skus), grid.n_periods, len(SERIES_METRICS))
        at_ms = epoch_ms(at or datetime.now(UTC))
        span = (epoch_ms(start), epoch_ms(planned_until or end))
        state: dict[str, dict[str, Any]] = {}
        decoded = [row.decode().split("|") for row in rows]
        known = self._promotions(
            {p.encode() for *_, promos in decoded if promos for p in promos.split(",")}
        )
        for sku, (last_price, on_hand, on_order, lead_time, promos) in zip(
            skus, decoded, strict=True
        ):
            ids = {p.encode() for p in promos.split(",")} if promos else set()
            state[sku] = _state_row(
                {
                    "last_price": last_price,
                    "on_hand": on_hand,
                    "on_order": on_order,
                    "lead_time_days": lead_time,
                },
                None,
                self._active_promotions(sku, ids, at_ms, known) if ids else [],
            )
            state[sku]["planned_promotions"] = (
                self._active_promotions(sku, ids, span, known) if ids else []
            )
        return grid.arrays(skus, values), state

    def state(
        self,
        skus: Sequence[str],
        *,
        ref_price_days: int | None = 28,
        at: datetime | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Current state per SKU: last price, reference price (the largest daily price in the
        ``ref_price_days`` before ``at``; None skips that read), stock on hand / on order /
        lead time, and the promotions active at ``at`` (default: now)."""
        at = at or datetime.now(UTC)
        pipe = self.client.pipeline(transaction=False)
        for sku in skus:
            pipe.hgetall(self.layout.state(sku))
            pipe.smembers(self.layout.promotions_of_sku(sku))
        raw = pipe.execute()
        prices = (
            self.buckets(
                skus, at - timedelta(days=ref_price_days), at, "D", ("price_max_milli",)
            ).values[:, :, 0]
            if ref_price_days
            else np.zeros((len(skus), 0))
        )
        out: dict[str, dict[str, Any]] = {}
        at_ms = epoch_ms(at)
        for i, sku in enumerate(skus):
            h = {k.decode(): v.decode() for k, v in raw[2 * i].items()}
            ref = float(prices[i].max()) if prices.shape[1] and prices[i].max() > 0 else None
            out[sku] = _state_row(h, ref, self._active_promotions(sku, raw[2 * i + 1], at_ms))
        return out

    def _promotions(self, ids: set[bytes]) -> dict[str, dict[str, str]]:
        """The state hashes of the promotions ``ids``, in one pipelined round trip."""
        names = sorted(x.decode() for x in ids)
        if not names:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for pid in names:
            pipe.hgetall(self.layout.promotion(pid))
        return {
            pid: {k.decode(): v.decode() for k, v in h.items()}
            for pid, h in zip(names, pipe.execute(), strict=True)
        }

    def _active_promotions(
        self,
        sku: str,
        ids: set[bytes],
        at_ms: int | tuple[int, int],
        known: dict[str, dict[str, str]] | None = None,
    ) -> list[dict[str, Any]]:
        """The SKU's promotions (not ended) active at ``at_ms``, or whose planned interval
        overlaps ``at_ms = (lo, hi)``; ``known``: their hashes, already read."""
        lo, hi = (at_ms, at_ms + 1) if isinstance(at_ms, int) else at_ms
        hashes = known if known is not None else self._promotions(ids)
        active = []
        for pid in sorted(x.decode() for x in ids):
            h = hashes.get(pid)
            if not h or h.get("action") == "end":
                continue
            if sku not in h.get("skus", "").split("\x1f"):
                continue
            if not (int(h["planned_start"]) < hi and lo < int(h["planned_end"])):
                continue
            active.append(
                {
                    "promotion_id": pid,
                    "kind": h["kind"],
                    "depth": float(h["depth"]),
                    "store_share": float(h.get("store_share") or 1.0),
                    "planned_start": _utc(int(h["planned_start"])),
                    "planned_end": _utc(int(h["planned_end"])),
                }
            )
        return active

    def stats(self) -> dict[str, int]:
        """Counters: events, duplicates, late, dead_letters, windows_closed, timings (ms)."""
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.layout.stats).items()}


def skus_under(client: Any, prefix: str) -> set[str]:
    """The SKUs of every key ``{prefix}{sku}:{suffix}`` in the store (SCAN), e.g. the daily
    buckets' or the daily series' prefix of :class:`KeyLayout`."""
    skus = set()
    for raw in client.scan_iter(match=f"{prefix}*", count=5000):
        key = raw.decode() if isinstance(raw, bytes) else raw
        skus.add(key[len(prefix) :].rpartition(":")[0])
    return skus


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _container_start_ms(name: str) -> int:
    return epoch_ms(datetime(int(name[:4]), int(name[4:6]), 1, tzinfo=UTC))
