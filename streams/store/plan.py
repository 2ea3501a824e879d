"""Pure feature logic: what one batch of decoded events does to the feature store.

Nothing here does I/O. :func:`plan_batch` turns a batch of decoded events into a
:class:`BatchPlan`: the event ids to deduplicate and a flat list of store operations,
already aggregated per (SKU, bucket, metric), which :func:`streams.store.sink.apply_batch`
applies in one atomic Redis script (or :class:`streams.store.memory_sink.MemorySink` in a
dict, for tests).

The keys, metrics and units are in :mod:`streams.store.keys`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import add
from typing import Any, NamedTuple

from schemas import ClickEvent, Event, InventoryEvent, OrderEvent, PromotionEvent
from streams.store.keys import (
    DAY_MS,
    HOUR_MS,
    METRICS,
    SUM_METRICS,
    KeyLayout,
    Retention,
    epoch_ms,
    to_milli,
    version_of,
)

CLICK_METRIC = {"view": "views", "cart": "carts", "purchase": "purchases"}
"""Click actions counted in buckets; ``remove_from_cart`` is not counted."""


class Incoming(NamedTuple):
    """One decoded event with where it came from (a tuple: cheap to make per event)."""

    topic: str
    partition: int
    offset: int
    event: Event
    event_ms: int


Op = list[Any]
"""One store operation (JSON-encoded for the store script):

- ``["H", key, ttl, [f1, d1, f2, d2, ...]]``: add integers to hash fields; a new key gets
  the TTL (a bucket's period is fixed, so its retention counts from its first write);
- ``["M", key, ttl, [f1, d1, ...], [g1, v1, ...]]``: a bucket hash: add the integers ``d``
  to the fields ``f`` and keep the maximum of each ``g`` and ``v``, in one read and one
  write of the hash; a new key gets the TTL;
- ``["X", key, [f1, v1, ...]]``: keep the maximum of each field;
- ``["V", key, vfield, version, [f1, v1, ...]]``: set the fields if ``version`` is newer
  than the one stored in ``vfield`` (then the stored version becomes ``version``);
- ``["S", key, ttl, [m1, m2, ...]]``: add members to a set, then set the TTL;
- ``["Z", key, ttl, [score1, m1, ...]]``: add members to a sorted set, then set the TTL;
- ``["B", key, ttl, [slot1, d1, slot2, d2, ...]]``: add integers to the signed 64-bit
  big-endian integers at ``slot`` (``BITFIELD INCRBY i64 #slot``); a new key gets the TTL;
- ``["T", key, ttl]``: set a TTL;
- ``["F", key, field, value]``: set a field if it is not set;
- ``["N", key, field]``: set a field to the store's clock (ms).
"""


@dataclass
class BatchPlan:
    """What one batch does: dedup ids by key, store operations, counters, touched windows."""

    dedup: dict[str, list[str]] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    events: int = 0
    duplicates_in_batch: int = 0
    late: int = 0
    watermarks: dict[tuple[str, int], int] = field(default_factory=dict)
    windows: dict[tuple[str, int], set[int]] = field(default_factory=dict)
    event_ids: list[str] = field(default_factory=list)


_N_SUM = len(SUM_METRICS)
_PMAX = len(METRICS) - 1
HOURLY_CONTAINER_EXTRA_S = 31 * 86_400
"""An hourly bucket hash holds a month: its TTL, counted from its first write, is the hourly
retention plus this, so that the month's last hour is kept as long as its first."""
_HOUR_FIELDS = [[f"{m}:{s // 24 + 1:02d}{s % 24:02d}" for s in range(31 * 24)] for m in METRICS]
"""Per metric, the field of each hour slot of a month: ``{metric}:{DD}{HH}``, slot =
24 · (day − 1) + hour."""
_DAY_FIELDS = [[f"{m}:{d:02d}" for d in range(32)] for m in METRICS]
_HOUR_SUM_FIELDS = [tuple(_HOUR_FIELDS[j][h] for j in range(_N_SUM)) for h in range(31 * 24)]
_DAY_SUM_FIELDS = [tuple(_DAY_FIELDS[j][d] for j in range(_N_SUM)) for d in range(32)]
_CLICK_INDEX = {action: SUM_METRICS.index(metric) for action, metric in CLICK_METRIC.items()}


def _day_name(day_index: int) -> tuple[str, str, str, int]:
    """(``YYYYMMDD``, ``YYYYMM``, ``DD``, slot of its first hour in the month) of a day
    counted from the epoch."""
    moment = datetime.fromtimestamp(day_index * 86_400, tz=UTC)
    month = f"{moment.year:04d}{moment.month:02d}"
    dd = f"{moment.day:02d}"
    return month + dd, month, dd, 24 * (moment.day - 1)


def series_slot(day_index: int) -> tuple[str, int]:
    """(year ``YYYY``, slot of ``units``) of a day counted from the epoch in the daily series:
    ``slot = 2 · (day of year − 1)``; ``revenue_milli`` is at ``slot + 1``."""
    moment = datetime.fromtimestamp(day_index * 86_400, tz=UTC)
    return f"{moment.year:04d}", 2 * (moment.timetuple().tm_yday - 1)


def plan_batch(
    batch: Sequence[Incoming],
    layout: KeyLayout,
    retention: Retention,
    *,
    watermarks: dict[tuple[str, int], int],
    grace_ms: int,
    window_ms: int,
    skip_ids: frozenset[str] = frozenset(),
) -> BatchPlan:
    """Aggregate a batch into store operations.

    ``watermarks`` maps (topic, partition) to the largest event time seen so far (ms); it
    is read, not changed: the advanced watermarks are in the returned plan. An event older
    than its partition's watermark minus ``grace_ms`` is *late*: it is applied to its own
    historical bucket like any other and counted in ``plan.late``. Events whose id is in
    ``skip_ids`` (known duplicates) and repeats of an id inside the batch are left out.
    """
    plan = BatchPlan()
    gathered = _gather(batch, plan, watermarks, grace_ms, window_ms, skip_ids)
    names = {d: _day_name(d) for d in gathered.ids_by_day}
    for d, ids in gathered.ids_by_day.items():
        plan.dedup[layout.dedup(names[d][0])] = ids
    _bucket_ops(plan.ops, gathered.buckets, names, layout, retention)
    _state_ops(plan.ops, gathered, layout, retention)
    _window_ops(plan, gathered.window_skus, layout, retention)
    wm_fields: list[Any] = []
    for tp in sorted(gathered.touched):
        plan.watermarks[tp] = gathered.watermarks[tp]
        wm_fields += (f"{tp[0]}:{tp[1]}", gathered.watermarks[tp])
    if wm_fields:
        plan.ops.append(["X", layout.watermarks, wm_fields])
    return plan


@dataclass
class _Gathered:
    """What one pass over a batch's events collects, before it becomes store operations."""

    buckets: dict[tuple[str, int], list[int]]
    """(SKU, hour counted from the epoch) -> the values of :data:`METRICS` in that hour."""
    prices: dict[str, tuple[int, str, float]]
    """SKU -> (event time, event id, unit price) of its newest priced event."""
    stock: dict[str, tuple[int, str, InventoryEvent]]
    """SKU -> (event time, event id, event) of its newest inventory event."""
    promotions: list[tuple[int, str, PromotionEvent]]
    ids_by_day: dict[int, list[str]]
    """Day counted from the epoch -> the ids of the batch's events of that day."""
    window_skus: dict[tuple[str, int, int], set[str]]
    """(topic, partition, window start ms) -> the SKUs the batch changed in the window."""
    watermarks: dict[tuple[str, int], int]
    touched: set[tuple[str, int]]
    """The partitions whose watermark the batch advanced."""


def _gather(
    batch: Sequence[Incoming],
    plan: BatchPlan,
    watermarks: dict[tuple[str, int], int],
    grace_ms: int,
    window_ms: int,
    skip_ids: frozenset[str],
) -> _Gathered:
    """One pass over the events (the hot loop: everything in locals); counts the batch's
    duplicates, late events and ids into ``plan``."""
    seen: set[str] = set()
    acc: dict[tuple[str, int], list[int]] = {}  # (sku, hour index) -> METRICS
    prices: dict[str, tuple[int, str, float]] = {}
    stock: dict[str, tuple[int, str, InventoryEvent]] = {}
    promos: list[tuple[int, str, PromotionEvent]] = []
    ids_by_day: dict[int, list[str]] = {}
    window_skus: dict[tuple[str, int, int], set[str]] = {}
    wm = dict(watermarks)
    touched_wm: set[tuple[str, int]] = set()
    late = 0

    for item in batch:
        event = item.event
        eid = event.event_id
        if eid in seen or eid in skip_ids:
            plan.duplicates_in_batch += eid in seen
            continue
        seen.add(eid)
        t = item.event_ms
        day = t // DAY_MS
        ids = ids_by_day.get(day)
        if ids is None:
            ids_by_day[day] = ids = []
        ids.append(eid)
        tp = (item.topic, item.partition)
        current = wm.get(tp)
        if current is None or t > current:
            wm[tp] = t
            touched_wm.add(tp)
        elif t < current - grace_ms:
            late += 1

        if isinstance(event, OrderEvent):
            sku = event.sku
            a = acc.get((sku, t // HOUR_MS))
            if a is None:
                acc[(sku, t // HOUR_MS)] = a = [0, 0, 0, 0, 0, 0, 0, 0, -1]
            q = event.quantity
            if q > 0:
                price = event.unit_price
                a[0] += q
                a[1] += to_milli(q * price)
                a[2] += 1
                milli = to_milli(price)
                if milli > a[8]:
                    a[8] = milli
                cur = prices.get(sku)
                if cur is None or t > cur[0] or (t == cur[0] and eid > cur[1]):
                    prices[sku] = (t, eid, price)
            else:
                a[3] -= q
                a[4] += 1
            skus: Sequence[str] = (sku,)
        elif isinstance(event, ClickEvent):
            sku = event.sku
            j = _CLICK_INDEX.get(event.action)
            if j is not None:
                a = acc.get((sku, t // HOUR_MS))
                if a is None:
                    acc[(sku, t // HOUR_MS)] = a = [0, 0, 0, 0, 0, 0, 0, 0, -1]
                a[j] += 1
            if event.price is not None:
                cur = prices.get(sku)
                if cur is None or t > cur[0] or (t == cur[0] and eid > cur[1]):
                    prices[sku] = (t, eid, event.price)
            skus = (sku,)
        elif isinstance(event, InventoryEvent):
            sku = event.sku
            held = stock.get(sku)
            if held is None or t > held[0] or (t == held[0] and eid > held[1]):
                stock[sku] = (t, eid, event)
            skus = (sku,)
        elif isinstance(event, PromotionEvent):
            promos.append((t, eid, event))
            skus = event.skus
        else:  # pragma: no cover - the schemas admit no other event
            continue
        start = t - t % window_ms
        wkey = (item.topic, item.partition, start)
        bucket = window_skus.get(wkey)
        if bucket is None:
            window_skus[wkey] = bucket = set()
        bucket.update(skus)

    plan.late = late
    plan.event_ids = [eid for ids in ids_by_day.values() for eid in ids]
    plan.events = len(plan.event_ids)
    return _Gathered(acc, prices, stock, promos, ids_by_day, window_skus, wm, touched_wm)


def _bucket_ops(
    ops: list[Op],
    acc: dict[tuple[str, int], list[int]],
    names: dict[int, tuple[str, str, str, int]],
    layout: KeyLayout,
    retention: Retention,
) -> None:
    """The hourly and daily bucket hashes (``M``) and the daily series (``B``) of the
    batch's hourly sums; ``names`` caches :func:`_day_name` by day."""
    hourly: dict[str, list[Any]] = {}
    hourly_max: dict[str, list[Any]] = {}
    daily_acc: dict[tuple[str, int], list[int]] = {}
    for (sku, hour), a in acc.items():
        d = hour // 24
        name = names.get(d)
        if name is None:
            names[d] = name = _day_name(d)
        hh = hour % 24 + name[3]  # the hour's slot in its month
        key = layout.hourly(sku, name[1])
        fields = hourly.get(key)
        if fields is None:
            hourly[key] = fields = []
        for fname, value in zip(_HOUR_SUM_FIELDS[hh], a, strict=False):
            if value:
                fields += (fname, value)
        pmax = a[_PMAX]
        if pmax >= 0:
            hourly_max.setdefault(key, []).extend((_HOUR_FIELDS[_PMAX][hh], pmax))
        da = daily_acc.get((sku, d))
        if da is None:
            daily_acc[(sku, d)] = a.copy()
        else:
            merged = list(map(add, da, a))
            merged[_PMAX] = max(da[_PMAX], pmax)
            daily_acc[(sku, d)] = merged
    daily, daily_max, series = _daily(daily_acc, names, layout)
    for sums, maxima, ttl in (
        (hourly, hourly_max, retention.hourly_s + HOURLY_CONTAINER_EXTRA_S),
        (daily, daily_max, retention.daily_s),
    ):
        for key, fields in sums.items():
            highs = maxima.get(key, [])
            if fields or highs:
                ops.append(["M", key, ttl, fields, highs])
    for key, slots in series.items():
        ops.append(["B", key, retention.daily_s, slots])


def _daily(
    daily_acc: dict[tuple[str, int], list[int]],
    names: dict[int, tuple[str, str, str, int]],
    layout: KeyLayout,
) -> tuple[dict[str, list[Any]], dict[str, list[Any]], dict[str, list[int]]]:
    """Daily bucket fields (sums, maxima) by hash, and daily-series slots by series key."""
    daily: dict[str, list[Any]] = {}
    daily_max: dict[str, list[Any]] = {}
    series: dict[str, list[int]] = {}
    slots_of_day: dict[int, tuple[str, int]] = {}
    for (sku, d), a in daily_acc.items():
        _, month, dd_name, _ = names[d]
        dd = int(dd_name)
        if a[0] or a[1]:
            slotted = slots_of_day.get(d)
            if slotted is None:
                slots_of_day[d] = slotted = series_slot(d)
            year, slot = slotted
            skey = layout.daily_series(sku, year)
            slots = series.get(skey)
            if slots is None:
                series[skey] = slots = []
            slots += (slot, a[0], slot + 1, a[1])
        key = layout.daily(sku, month)
        fields = daily.get(key)
        if fields is None:
            daily[key] = fields = []
        for fname, value in zip(_DAY_SUM_FIELDS[dd], a, strict=False):
            if value:
                fields += (fname, value)
        if a[_PMAX] >= 0:
            daily_max.setdefault(key, []).extend((_DAY_FIELDS[_PMAX][dd], a[_PMAX]))
    return daily, daily_max, series


def _state_ops(ops: list[Op], gathered: _Gathered, layout: KeyLayout, retention: Retention) -> None:
    """Versioned state: the last price and the stock of each SKU, the promotions."""
    for sku, (t, eid, price) in gathered.prices.items():
        key = layout.state(sku)
        ops.append(["V", key, "price_v", version_of(t, eid), ["last_price", repr(price)]])
        ops.append(["T", key, retention.state_s])
    for sku, (t, eid, inv) in gathered.stock.items():
        key = layout.state(sku)
        ops.append(
            [
                "V",
                key,
                "inventory_v",
                version_of(t, eid),
                [
                    "on_hand",
                    str(inv.on_hand),
                    "on_order",
                    str(inv.on_order),
                    "lead_time_days",
                    repr(inv.lead_time_days),
                ],
            ]
        )
        ops.append(["T", key, retention.state_s])
    for t, eid, promo in gathered.promotions:
        _promotion_ops(ops, t, eid, promo, layout, retention)


def _promotion_ops(
    ops: list[Op],
    t: int,
    eid: str,
    promo: PromotionEvent,
    layout: KeyLayout,
    retention: Retention,
) -> None:
    pkey = layout.promotion(promo.promotion_id)
    ops.append(
        [
            "V",
            pkey,
            "v",
            version_of(t, eid),
            [
                "action",
                promo.action,
                "kind",
                promo.kind,
                "depth",
                repr(promo.discount_depth),
                "planned_start",
                str(epoch_ms(promo.planned_start)),
                "planned_end",
                str(epoch_ms(promo.planned_end)),
                "skus",
                "\x1f".join(promo.skus),
                "category",
                promo.category or "",
                "store_share",
                repr(promo.store_share),
            ],
        ]
    )
    ops.append(["T", pkey, retention.state_s])
    for sku in promo.skus:
        ops.append(["S", layout.promotions_of_sku(sku), retention.state_s, [promo.promotion_id]])
    if promo.category:
        ops.append(
            [
                "S",
                layout.promotions_of_category(promo.category),
                retention.state_s,
                [promo.promotion_id],
            ]
        )


def _window_ops(
    plan: BatchPlan,
    window_skus: dict[tuple[str, int, int], set[str]],
    layout: KeyLayout,
    retention: Retention,
) -> None:
    """The SKUs changed per open window (``S``) and the open windows per partition (``Z``)."""
    open_windows: dict[tuple[str, int], list[Any]] = {}
    for (topic, partition, start), changed in window_skus.items():
        if not changed:
            continue
        plan.ops.append(
            ["S", layout.window_skus(topic, partition, start), retention.dedup_s, sorted(changed)]
        )
        open_windows.setdefault((topic, partition), []).extend((start, start))
        plan.windows.setdefault((topic, partition), set()).add(start)
    for (topic, partition), members in open_windows.items():
        plan.ops.append(["Z", layout.open_windows(topic, partition), retention.dedup_s, members])


def offset_op(layout: KeyLayout, offsets: dict[tuple[str, int], int]) -> list[Op]:
    """The store operation that records, per (topic, partition), the next offset to read
    (``offsets``: one past the highest offset consumed): an ``X`` op, so the stored offset
    never moves backwards. Empty when there are no offsets."""
    fields: list[Any] = []
    for (topic, partition), offset in sorted(offsets.items()):
        fields += (f"{topic}:{partition}", offset)
    return [["X", layout.offsets, fields]] if fields else []


def next_offsets(records: Iterable[Any]) -> dict[tuple[str, int], int]:
    """Per (topic, partition) of ``records`` (anything with ``topic``, ``partition`` and
    ``offset``), one past the highest offset: where to read next once they are applied."""
    out: dict[tuple[str, int], int] = {}
    for rec in records:
        tp = (rec.topic, rec.partition)
        nxt = rec.offset + 1
        if out.get(tp, -1) < nxt:
            out[tp] = nxt
    return out


def parse_offsets(raw: dict[str, int]) -> dict[tuple[str, int], int]:
    """The offsets hash's fields (``{topic}:{partition}`` -> offset) by (topic, partition)."""
    out: dict[tuple[str, int], int] = {}
    for field_name, value in raw.items():
        topic, _, part = field_name.rpartition(":")
        out[(topic, int(part))] = int(value)
    return out


def closable_windows(
    open_starts: Iterable[int], watermark_ms: int, *, grace_ms: int, window_ms: int
) -> list[int]:
    """Window starts whose end the watermark has passed by more than the grace period."""
    return sorted(s for s in open_starts if s + window_ms + grace_ms <= watermark_ms)
