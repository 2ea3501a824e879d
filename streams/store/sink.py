"""The feature store's write side: what a sink is, and applying a batch exactly once.

:func:`apply_batch` sends a batch's event ids (grouped by dedup key) and its pre-aggregated
operations (see :class:`streams.store.plan.BatchPlan`) to a :class:`Sink`: Redis
(:class:`streams.store.redis_sink.RedisSink`, the script ``lua/apply.lua``) or memory
(:class:`streams.store.memory_sink.MemorySink`). In one atomic step the sink checks every
id against the dedup sets; if any was seen before it changes nothing and returns those ids
(the batch is planned again without them and sent again); otherwise it records the ids,
applies every operation and returns the windows the new watermarks have closed with the
SKUs changed in each. A feature update and the memory of the events that caused it are
therefore never separated, whatever crashes or redeliveries happen around them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streams.store.keys import KeyLayout, Retention
from streams.store.plan import BatchPlan, Incoming, Op, offset_op, plan_batch

DueWindow = tuple[str, int, int, list[str]]
"""(topic, partition, window start ms, SKUs changed in the window)."""


@dataclass(frozen=True)
class Applied:
    """What the store script answered: the known ids (nothing applied), or the windows due."""

    duplicates: list[str]
    due: list[DueWindow]


class Sink(Protocol):
    """Where a stream processor's effects go: Redis (:class:`~streams.store.redis_sink.RedisSink`)
    or memory (:class:`~streams.store.memory_sink.MemorySink`)."""

    async def apply(self, args: list[str | int | bytes]) -> Applied: ...

    async def watermarks(self) -> dict[str, int]: ...

    async def offsets(self) -> dict[str, int] | None:
        """The stored next offsets by ``{topic}:{partition}``; None when the store has
        features but no offsets at all (written before offsets were stored)."""
        ...

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


def parse_due(decoded: Any) -> list[DueWindow]:
    """The windows due in the script's JSON answer, as :data:`DueWindow` tuples."""
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


async def record_offsets(
    sink: Sink, layout: KeyLayout, retention: Retention, offsets: dict[tuple[str, int], int]
) -> None:
    """Record consumed offsets without features (a batch that was all dead letters), in
    one script call of its own, so that the stored offsets do not lag Kafka's committed
    ones when nothing was wrong (which would read as a rolled-back Redis at the next
    assignment)."""
    ops = offset_op(layout, offsets)
    if ops:
        await sink.apply(script_args([], {}, retention, ops))


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
    offsets: dict[tuple[str, int], int] | None = None,
) -> tuple[BatchPlan, int, list[DueWindow]]:
    """Apply a batch exactly once; return its plan, how many duplicates were skipped, and
    the windows of its partitions that the watermarks have closed.

    ``plan`` is the batch's plan when the caller has made it already (with the same
    ``watermarks``); when the store knows some of its events, the batch is planned again
    without them. ``offsets`` (per topic-partition, the next offset to read once this
    batch is applied: see :func:`streams.store.plan.next_offsets`) are recorded by the same
    script, never moving a stored offset backwards.
    """
    tail = offset_op(layout, offsets) if offsets else []
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
        extra = _bookkeeping(plan, duplicates, layout, received_ms) + tail
        marks = {**watermarks, **plan.watermarks}
        windows = _windows_to_report(batch, marks, layout, grace_ms + window_ms)
        ops, pending = memo.strip(plan.ops) if memo is not None else (plan.ops, {})
        answer = await sink.apply(script_args(ops, plan.dedup, retention, extra, windows))
        if not answer.duplicates:
            if memo is not None:
                memo.commit(pending)
            return plan, duplicates, answer.due
        skip = skip | frozenset(answer.duplicates)
        plan = None


def _bookkeeping(
    plan: BatchPlan, duplicates: int, layout: KeyLayout, received_ms: int | None
) -> list[Op]:
    """The batch's counters and timings in the stats hash, applied with the batch."""
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
    return extra


def _windows_to_report(
    batch: Sequence[Incoming], marks: dict[tuple[str, int], int], layout: KeyLayout, lag_ms: int
) -> list[list[Any]]:
    """The script's ``w``: per partition of the batch, its open windows and the largest
    start that its watermark has closed (``lag_ms``: the grace period plus a window)."""
    return [
        [
            topic,
            partition,
            layout.open_windows(topic, partition),
            layout.window_skus(topic, partition, 0)[:-1],
            marks[(topic, partition)] - lag_ms,
        ]
        for topic, partition in sorted({(i.topic, i.partition) for i in batch})
        if (topic, partition) in marks
    ]
