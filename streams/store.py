"""The Redis feature store: one atomic script for writes, a batched dense read API.

Writes: :data:`APPLY_LUA` receives a batch's event ids (grouped by dedup key) and its
pre-aggregated operations (see :class:`streams.features.BatchPlan`). In one atomic step it
checks every id against the dedup sets; if any was seen before it changes nothing and
returns those ids (the caller re-plans the batch without them and calls again); otherwise
it records the ids, applies every operation and returns, as JSON, the windows the new
watermarks have closed with the SKUs changed in each. A feature update and the memory of the
events that caused it are therefore never separated, whatever crashes or redeliveries
happen around them.

Reads: :meth:`FeatureReader.buckets` returns dense ``numpy`` arrays for many SKUs over a
time range at hourly or daily frequency, with zeros where nothing happened.

The key layout is in ``docs/feature-store.md`` and in :class:`streams.features.KeyLayout`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal, Protocol

import numpy as np

from streams.features import (
    DAY_MS,
    HOUR_MS,
    METRICS,
    MILLI_METRICS,
    SERIES_METRICS,
    BatchPlan,
    Incoming,
    KeyLayout,
    Op,
    Retention,
    epoch_ms,
    plan_batch,
    series_slot,
)

log = logging.getLogger(__name__)

APPLY_LUA = r"""
local ttl = tonumber(ARGV[1])
local plan = cjson.decode(ARGV[2])
local CHUNK = 1000
local function chunks(list, step, fn)
  for lo = 1, #list, step do
    local part = {}
    for j = lo, math.min(lo + step - 1, #list) do part[#part + 1] = list[j] end
    fn(part)
  end
end
local dups = {}
for _, group in ipairs(plan.d) do
  local key = group[1]
  chunks(group[2], CHUNK, function(ids)
    local flags = redis.call('SMISMEMBER', key, unpack(ids))
    for j = 1, #ids do
      if flags[j] == 1 then dups[#dups + 1] = ids[j] end
    end
  end)
end
if #dups > 0 then return dups end
for _, group in ipairs(plan.d) do
  local key = group[1]
  chunks(group[2], CHUNK, function(ids) redis.call('SADD', key, unpack(ids)) end)
  redis.call('EXPIRE', key, ttl)
end
for _, op in ipairs(plan.o) do
  local code, key = op[1], op[2]
  if code == 'H' then
    local f = op[4]
    for j = 1, #f, 2 do redis.call('HINCRBY', key, f[j], f[j + 1]) end
    if op[3] > 0 then redis.call('EXPIRE', key, op[3], 'NX') end
  elseif code == 'M' then
    local sums, highs, names = op[4], op[5], {}
    for j = 1, #sums, 2 do names[#names + 1] = sums[j] end
    for j = 1, #highs, 2 do names[#names + 1] = highs[j] end
    local cur = redis.call('HMGET', key, unpack(names))
    local out, k = {}, 0
    for j = 1, #sums, 2 do
      k = k + 1
      out[#out + 1] = sums[j]
      out[#out + 1] = string.format('%d', (tonumber(cur[k]) or 0) + sums[j + 1])
    end
    for j = 1, #highs, 2 do
      k = k + 1
      local old = tonumber(cur[k])
      if (not old) or old < highs[j + 1] then
        out[#out + 1] = highs[j]
        out[#out + 1] = string.format('%d', highs[j + 1])
      end
    end
    if #out > 0 then redis.call('HSET', key, unpack(out)) end
    if op[3] > 0 then redis.call('EXPIRE', key, op[3], 'NX') end
  elseif code == 'X' then
    local f = op[3]
    for j = 1, #f, 2 do
      if redis.call('HSETNX', key, f[j], f[j + 1]) == 0 then
        if tonumber(redis.call('HGET', key, f[j])) < tonumber(f[j + 1]) then
          redis.call('HSET', key, f[j], f[j + 1])
        end
      end
    end
  elseif code == 'V' then
    local cur = redis.call('HGET', key, op[3])
    if (not cur) or cur < op[4] then
      redis.call('HSET', key, op[3], op[4], unpack(op[5]))
    end
  elseif code == 'S' then
    chunks(op[4], CHUNK, function(m) redis.call('SADD', key, unpack(m)) end)
    if op[3] > 0 then redis.call('EXPIRE', key, op[3]) end
  elseif code == 'Z' then
    chunks(op[4], CHUNK, function(m) redis.call('ZADD', key, unpack(m)) end)
    if op[3] > 0 then redis.call('EXPIRE', key, op[3]) end
  elseif code == 'B' then
    local f, args = op[4], {}
    for j = 1, #f, 2 do
      args[#args + 1] = 'INCRBY'
      args[#args + 1] = 'i64'
      args[#args + 1] = '#' .. f[j]
      args[#args + 1] = f[j + 1]
    end
    redis.call('BITFIELD', key, unpack(args))
    if op[3] > 0 then redis.call('EXPIRE', key, op[3], 'NX') end
  elseif code == 'T' then
    redis.call('EXPIRE', key, op[3])
  elseif code == 'F' then
    redis.call('HSETNX', key, op[3], op[4])
  elseif code == 'N' then
    local t = redis.call('TIME')
    redis.call('HSET', key, op[3], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  else
    return redis.error_reply('unknown feature-store op ' .. tostring(code))
  end
end
local due = {}
for _, w in ipairs(plan.w) do
  for _, start in ipairs(redis.call('ZRANGEBYSCORE', w[3], '-inf', w[5])) do
    due[#due + 1] = {w[1], w[2], tonumber(start), redis.call('SMEMBERS', w[4] .. start)}
  end
end
return cjson.encode(due)
"""

DROP_LUA = r"""
local a = 1
for _ = 1, tonumber(ARGV[1]) do
  local zkey, skey, start, n = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 4])
  local first, last = a + 5, a + 4 + n
  for i = first, last, 1000 do
    redis.call('SREM', skey, unpack(ARGV, i, math.min(i + 999, last)))
  end
  if redis.call('SCARD', skey) == 0 then redis.call('ZREM', zkey, start) end
  a = last
end
return 0
"""
"""Forget published windows: ARGV is the number of windows, then per window its open-window
set, its SKU set, its start and the count and names of the SKUs it was published with.

Only those SKUs leave the window's set. A late event applied between the report and this
drop added its SKU to the set: the window then stays open and is reported again, with that
SKU, by its partition's next batch (deleting the whole set lost that SKU's republication).
"""


SERIES_LUA = r"""
local series_prefix, n_years = ARGV[1], tonumber(ARGV[2])
local years, first, last, width = {}, {}, {}, {}
local a = 3
for y = 1, n_years do
  years[y], first[y], last[y] = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  width[y] = last[y] - first[y] + 1
  a = a + 3
end
local state_prefix, promo_prefix = ARGV[a], ARGV[a + 1]
local out, states = {}, {}
for i = a + 2, #ARGV do
  local sku = ARGV[i]
  for y = 1, n_years do
    local part = redis.call('GETRANGE', series_prefix .. sku .. ':' .. years[y], first[y], last[y])
    out[#out + 1] = part
    if #part < width[y] then out[#out + 1] = string.rep('\0', width[y] - #part) end
  end
  local st = redis.call('HMGET', state_prefix .. sku, 'last_price', 'on_hand', 'on_order',
    'lead_time_days')
  for k = 1, 4 do st[k] = st[k] or '' end
  st[5] = table.concat(redis.call('SMEMBERS', promo_prefix .. sku), ',')
  states[#states + 1] = table.concat(st, '|')
end
return {out, states}
"""
"""The forecast worker's read: many SKUs' daily series and state in one call.

ARGV: the daily-series key prefix, the number of years, per year its ``YYYY`` and the first
and last byte of the range, the state and promotion-set key prefixes, then the SKUs.
Returns the pieces of every SKU's range, in order (zeros where a series is shorter or
absent: joined, they are the SKUs' ranges back to back), and per SKU
``last_price|on_hand|on_order|lead_time_days|promotion ids``. One ``GETRANGE`` per SKU and
year replaces reading and parsing every bucket hash. The pieces are joined by the client:
``table.concat`` of a thousand 2 KB strings took Redis 2.5x as long as the whole read
without it (Lua 5.1 merges its buffer by repeated copies).
"""


DueWindow = tuple[str, int, int, list[str]]
"""(topic, partition, window start ms, SKUs changed in the window)."""


@dataclass(frozen=True)
class Applied:
    """What the store script answered: the known ids (nothing applied), or the windows due."""

    duplicates: list[str]
    due: list[DueWindow]


class Sink(Protocol):
    """Where a stream processor's effects go: Redis (:class:`RedisSink`) or memory."""

    async def apply(self, args: list[str | int | bytes]) -> Applied: ...

    async def watermarks(self) -> dict[str, int]: ...

    async def drop_windows(self, windows: Sequence[DueWindow]) -> None: ...

    async def incr_stat(self, name: str, amount: int) -> None: ...


def script_args(
    ops: Sequence[Op],
    dedup: dict[str, list[str]],
    retention: Retention,
    extra_ops: Sequence[Op],
    windows: Sequence[list[Any]] = (),
) -> list[str | int | bytes]:
    """The script's ARGV: the dedup TTL and the JSON of ``{"d": groups, "o": ops,
    "w": windows to report}`` (``dedup``: event ids by dedup key)."""
    import orjson

    groups = [[key, ids] for key, ids in dedup.items()]
    body = orjson.dumps({"d": groups, "o": [*ops, *extra_ops], "w": list(windows)})
    return [retention.dedup_s, body]


def _due(decoded: Any) -> list[DueWindow]:
    if not isinstance(decoded, list):  # cjson encodes an empty table as {}
        return []
    return [
        (str(t), int(p), int(s), list(m) if isinstance(m, list) else []) for t, p, s, m in decoded
    ]


class ExpiryMemo:
    """The keys this process has already given a TTL, so that later batches skip the
    ``EXPIRE`` (most of the store script's calls would otherwise be TTLs already set).

    - Bucket keys (``M`` and ``B`` ops) get their TTL once, on their first write
      (``EXPIRE … NX``): after a successful write, the same key's op is sent with TTL 0
      (no ``EXPIRE``) until half its TTL has passed, when the ``EXPIRE … NX`` is sent again
      (a no-op while the key lives; it covers a key that expired and was written anew).
    - State keys (``T`` ops, a sliding TTL) are refreshed at most once per ``refresh_s``,
      so state lives at least its TTL minus that after its last write.

    Entries are recorded only once the store has applied the batch (:meth:`commit`); a key
    deleted by hand while a worker runs is written again without a TTL until its entry
    lapses. At most ``max_keys`` entries are kept (lapsed ones are dropped first, then all).
    """

    def __init__(self, *, refresh_s: float = 3600.0, max_keys: int = 500_000) -> None:
        self.refresh_s = refresh_s
        self.max_keys = max_keys
        self._until: dict[str, float] = {}

    def strip(self, ops: Sequence[Op]) -> tuple[list[Op], dict[str, float]]:
        """``ops`` without the TTLs already set, and the entries to :meth:`commit` once
        they are applied."""
        now = time.monotonic()
        until = self._until
        out: list[Op] = []
        pending: dict[str, float] = {}
        for op in ops:
            code = op[0]
            if code in ("M", "B") and op[2] > 0:
                key = op[1]
                if until.get(key, 0.0) > now:
                    op = [op[0], key, 0, *op[3:]]
                else:
                    pending[key] = now + op[2] / 2
            elif code == "T":
                key = op[1]
                if until.get(key, 0.0) > now:
                    continue
                pending[key] = now + min(self.refresh_s, op[2] / 2)
            out.append(op)
        return out, pending

    def commit(self, pending: dict[str, float]) -> None:
        until = self._until
        until.update(pending)
        if len(until) > self.max_keys:
            now = time.monotonic()
            for key in [k for k, t in until.items() if t <= now]:
                del until[key]
            if len(until) > self.max_keys:
                until.clear()


async def apply_batch(
    sink: Sink,
    batch: Sequence[Incoming],
    layout: KeyLayout,
    retention: Retention,
    *,
    watermarks: dict[tuple[str, int], int],
    grace_ms: int,
    window_ms: int,
    received_ms: int | None = None,
    plan: BatchPlan | None = None,
    memo: ExpiryMemo | None = None,
) -> tuple[BatchPlan, int, list[DueWindow]]:
    """Apply a batch exactly once; return its plan, how many duplicates were skipped, and
    the windows of its partitions that the watermarks have closed.

    ``plan`` is the batch's plan when the caller has made it already (with the same
    ``watermarks``); when the store knows some of its events, the batch is planned again
    without them.
    """
    skip: frozenset[str] = frozenset()
    while True:
        if plan is None:
            plan = plan_batch(
                batch,
                layout,
                retention,
                watermarks=watermarks,
                grace_ms=grace_ms,
                window_ms=window_ms,
                skip_ids=skip,
            )
        duplicates = len(skip) + plan.duplicates_in_batch
        extra: list[Op] = []
        counters: list[Any] = []
        for name, value in (
            ("events", plan.events),
            ("duplicates", duplicates),
            ("late", plan.late),
            ("batches", 1),
        ):
            if value:
                counters += (name, value)
        if counters:
            extra.append(["H", layout.stats, 0, counters])
        if plan.events:
            if received_ms is not None:
                extra.append(["F", layout.stats, "first_received_ms", received_ms])
            extra.append(["N", layout.stats, "last_durable_ms"])
        marks = {**watermarks, **plan.watermarks}
        windows = [
            [
                topic,
                partition,
                layout.open_windows(topic, partition),
                layout.window_skus(topic, partition, 0)[:-1],
                marks[(topic, partition)] - grace_ms - window_ms,
            ]
            for topic, partition in sorted({(i.topic, i.partition) for i in batch})
            if (topic, partition) in marks
        ]
        ops, pending = memo.strip(plan.ops) if memo is not None else (plan.ops, {})
        answer = await sink.apply(script_args(ops, plan.dedup, retention, extra, windows))
        if not answer.duplicates:
            if memo is not None:
                memo.commit(pending)
            return plan, duplicates, answer.due
        skip = skip | frozenset(answer.duplicates)
        plan = None


class RedisSink:
    """The feature store's write side (connects on first use).

    The store script runs on a thread of its own, over a synchronous client: the request
    is on its way to Redis as soon as :meth:`apply` is called, and the event loop's thread
    is free to prepare the next batch while Redis applies this one. (Over ``redis.asyncio``
    the request was only written at the caller's next real suspension, which, behind a
    CPU-bound ``prepare``, came after the next batch was prepared: the two never overlapped.)
    The other calls, small ones, use ``redis.asyncio``.
    """

    def __init__(self, redis_url: str, layout: KeyLayout, redis_kwargs: dict[str, Any]) -> None:
        self.redis_url = redis_url
        self.layout = layout
        self.redis_kwargs = redis_kwargs
        self._client: Any = None
        self._sync: Any = None
        self._script: Any = None
        self._drop: Any = None
        self._thread: ThreadPoolExecutor | None = None

    def _connect(self) -> Any:
        if self._client is None:
            import redis
            import redis.asyncio as aredis

            self._client = aredis.Redis.from_url(self.redis_url, **self.redis_kwargs)
            self._sync = redis.Redis.from_url(self.redis_url, **self.redis_kwargs)
            self._script = self._sync.register_script(APPLY_LUA)
            # one thread: scripts reach Redis in the order they are applied
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-script")
        return self._client

    async def _retry(self, make: Any) -> Any:
        import redis

        delay = 0.1
        while True:
            try:
                return await make()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def apply(self, args: list[str | int | bytes]) -> Applied:
        import orjson

        self._connect()
        loop = asyncio.get_running_loop()
        run = partial(self._script, keys=[], args=args)
        result = await self._retry(lambda: loop.run_in_executor(self._thread, run))
        if isinstance(result, list):
            return Applied([r.decode() if isinstance(r, bytes) else str(r) for r in result], [])
        return Applied([], _due(orjson.loads(result)))

    async def watermarks(self) -> dict[str, int]:
        client = self._connect()
        raw = await self._retry(lambda: client.hgetall(self.layout.watermarks))
        return {k.decode(): int(v) for k, v in raw.items()}

    async def drop_windows(self, windows: Sequence[DueWindow]) -> None:
        client = self._connect()
        if self._drop is None:
            self._drop = client.register_script(DROP_LUA)
        args: list[str | int] = [len(windows)]
        for topic, partition, start, skus in windows:
            zkey = self.layout.open_windows(topic, partition)
            args += [zkey, self.layout.window_skus(topic, partition, start), start, len(skus)]
            args += skus
        if windows:
            await self._retry(lambda: self._drop(keys=[], args=args))

    async def incr_stat(self, name: str, amount: int) -> None:
        client = self._connect()
        await self._retry(lambda: client.hincrby(self.layout.stats, name, amount))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._thread is not None:
            self._thread.shutdown()
            self._thread = None
        if self._sync is not None:
            self._sync.close()
            self._sync = None


class MemorySink:
    """The same semantics as :data:`APPLY_LUA` over Python dicts, for broker-free tests."""

    def __init__(self, layout: KeyLayout) -> None:
        self.layout = layout
        self.hashes: dict[str, dict[str, str]] = {}
        self.sets: dict[str, set[str]] = {}
        self.zsets: dict[str, dict[str, float]] = {}
        self.strings: dict[str, bytearray] = {}
        self.ttls: dict[str, int] = {}
        self.calls = 0

    async def apply(self, args: list[str | int | bytes]) -> Applied:
        import orjson

        self.calls += 1
        ttl = int(args[0])
        plan = orjson.loads(bytes(args[1]) if not isinstance(args[1], str) else args[1])
        dups = [x for key, ids in plan["d"] for x in ids if x in self.sets.get(key, set())]
        if dups:
            return Applied([str(x) for x in dups], [])
        for key, ids in plan["d"]:
            self.sets.setdefault(key, set()).update(ids)
            self.ttls[key] = ttl
        for op in plan["o"]:
            code, key = op[0], op[1]
            if code == "H":
                h = self.hashes.setdefault(key, {})
                f = op[3]
                for j in range(0, len(f), 2):
                    h[f[j]] = str(int(h.get(f[j], "0")) + int(f[j + 1]))
                if op[2] > 0:
                    self.ttls.setdefault(key, op[2])
            elif code == "M":
                h = self.hashes.setdefault(key, {})
                f, g = op[3], op[4]
                for j in range(0, len(f), 2):
                    h[f[j]] = str(int(h.get(f[j], "0")) + int(f[j + 1]))
                for j in range(0, len(g), 2):
                    if g[j] not in h or int(h[g[j]]) < int(g[j + 1]):
                        h[g[j]] = str(int(g[j + 1]))
                if op[2] > 0:
                    self.ttls.setdefault(key, op[2])
            elif code == "X":
                h = self.hashes.setdefault(key, {})
                f = op[2]
                for j in range(0, len(f), 2):
                    if f[j] not in h or float(h[f[j]]) < float(f[j + 1]):
                        h[f[j]] = str(f[j + 1])
            elif code == "V":
                h = self.hashes.setdefault(key, {})
                if op[2] not in h or h[op[2]] < op[3]:
                    h[op[2]] = op[3]
                    f = op[4]
                    for j in range(0, len(f), 2):
                        h[f[j]] = str(f[j + 1])
            elif code == "S":
                self.sets.setdefault(key, set()).update(str(m) for m in op[3])
                if op[2] > 0:
                    self.ttls[key] = op[2]
            elif code == "Z":
                z = self.zsets.setdefault(key, {})
                m = op[3]
                for j in range(0, len(m), 2):
                    z[str(m[j + 1])] = float(m[j])
                if op[2] > 0:
                    self.ttls[key] = op[2]
            elif code == "B":
                b = self.strings.setdefault(key, bytearray())
                f = op[3]
                for j in range(0, len(f), 2):
                    at = 8 * int(f[j])
                    b.extend(bytes(max(0, at + 8 - len(b))))
                    total = int.from_bytes(b[at : at + 8], "big", signed=True) + int(f[j + 1])
                    b[at : at + 8] = total.to_bytes(8, "big", signed=True)
                if op[2] > 0:
                    self.ttls.setdefault(key, op[2])
            elif code == "T":
                self.ttls[key] = op[2]
            elif code == "F":
                self.hashes.setdefault(key, {}).setdefault(op[2], str(op[3]))
            elif code == "N":
                self.hashes.setdefault(key, {})[op[2]] = str(int(time.time() * 1000))
            else:
                raise ValueError(f"unknown feature-store op {code!r}")
        due: list[DueWindow] = []
        for topic, partition, okey, skey_prefix, max_start in plan["w"]:
            starts = sorted(
                int(m) for m, score in self.zsets.get(okey, {}).items() if score <= max_start
            )
            due += [
                (topic, partition, start, sorted(self.sets.get(f"{skey_prefix}{start}", ())))
                for start in starts
            ]
        return Applied([], due)

    async def watermarks(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.hashes.get(self.layout.watermarks, {}).items()}

    async def drop_windows(self, windows: Sequence[DueWindow]) -> None:
        for topic, partition, start, skus in windows:
            key = self.layout.window_skus(topic, partition, start)
            left = self.sets.get(key, set()) - set(skus)
            if left:
                self.sets[key] = left
                continue
            self.sets.pop(key, None)
            self.zsets.get(self.layout.open_windows(topic, partition), {}).pop(str(start), None)

    async def incr_stat(self, name: str, amount: int) -> None:
        h = self.hashes.setdefault(self.layout.stats, {})
        h[name] = str(int(h.get(name, "0")) + amount)


# --- reads --------------------------------------------------------------------------------

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
            raise ValueError(f"freq must be 'h' or 'D', not {freq!r}")
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {', '.join(METRICS)}")
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
    thousands of SKUs, scanned inside Redis by :data:`DENSE_LUA` in one round trip.
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
        self, skus: Sequence[str], start: datetime, end: datetime, *, at: datetime | None = None
    ) -> tuple[FeatureArrays, dict[str, dict[str, Any]]]:
        """The daily ``units`` and ``revenue_milli`` of ``skus`` in ``[start, end)`` (as
        :meth:`buckets` returns them) and their :meth:`state` at ``at`` (without the reference
        price), in one round trip.

        Reads the dense daily series (``{p}:dy:{sku}:{YYYY}``) with :data:`SERIES_LUA`,
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
        state: dict[str, dict[str, Any]] = {}
        for sku, row in zip(skus, rows, strict=True):
            last_price, on_hand, on_order, lead_time, promos = row.decode().split("|")
            ids = {p.encode() for p in promos.split(",")} if promos else set()
            state[sku] = _state_row(
                {
                    "last_price": last_price,
                    "on_hand": on_hand,
                    "on_order": on_order,
                    "lead_time_days": lead_time,
                },
                None,
                self._active_promotions(sku, ids, at_ms) if ids else [],
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

    def _active_promotions(self, sku: str, ids: set[bytes], at_ms: int) -> list[dict[str, Any]]:
        active = []
        for pid in sorted(x.decode() for x in ids):
            h = {
                k.decode(): v.decode()
                for k, v in self.client.hgetall(self.layout.promotion(pid)).items()
            }
            if not h or h.get("action") == "end":
                continue
            if sku not in h.get("skus", "").split("\x1f"):
                continue
            if not int(h["planned_start"]) <= at_ms < int(h["planned_end"]):
                continue
            active.append(
                {
                    "promotion_id": pid,
                    "kind": h["kind"],
                    "depth": float(h["depth"]),
                    "planned_end": datetime.fromtimestamp(int(h["planned_end"]) / 1000, tz=UTC),
                }
            )
        return active

    def stats(self) -> dict[str, int]:
        """Counters: events, duplicates, late, dead_letters, windows_closed, timings (ms)."""
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.layout.stats).items()}


def _container_start_ms(name: str) -> int:
    return epoch_ms(datetime(int(name[:4]), int(name[4:6]), 1, tzinfo=UTC))


def iter_keys(client: Any, pattern: str) -> list[str]:
    """Every key matching ``pattern`` (SCAN, not KEYS)."""
    return [k.decode() for k in client.scan_iter(match=pattern, count=5000)]
