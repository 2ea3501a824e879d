"""The stream processor behind the Faust agents, testable without a broker.

:class:`StreamProcessor.process` takes one batch of raw records of one topic: it decodes
and validates each with ``schemas``, dead-letters what fails (never raising on input),
applies the rest to the feature store exactly once (:func:`streams.store.sink.apply_batch`),
then publishes ``windows.closed`` for every window the watermark has passed.

Event time: the watermark of a (topic, partition) is the largest event time applied from
it (kept in Redis with the features, so a restart resumes it). An event older than the
watermark minus ``grace_seconds`` is *late*: it is still applied to its own historical
bucket (features stay exact) and counted in the ``late`` statistic; its window, if
already closed, is published again with the SKUs the late events changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from schemas import (
    ClickEvent,
    DeadLetter,
    Event,
    InventoryEvent,
    OrderEvent,
    PromotionEvent,
    SchemaError,
    Window,
    WindowClosed,
    decode,
)
from streams.ingest.fastdecode import fast_decode
from streams.observability.logs import context
from streams.observability.metrics import StreamMetrics, dead_letter_reason
from streams.settings import Settings
from streams.store.keys import epoch_ms, layout_of, retention_of
from streams.store.plan import BatchPlan, Incoming, next_offsets, plan_batch
from streams.store.sink import DueWindow, ExpiryMemo, Sink, apply_batch, record_offsets

log = logging.getLogger(__name__)

DEAD_LETTER_ORIGINAL_BYTES = 256 * 1024
"""The most of a bad message's bytes its dead letter carries (``truncated`` says when it
carries less): base64 in JSON makes them 4/3 as large, and a dead letter must fit in the
broker's and the producer's default 1 MB message (an input topic configured for larger
messages would otherwise make the worker fail on its own dead letter)."""

Outgoing = tuple[str, bytes | None, bytes]
Emit = Callable[[list[Outgoing]], Awaitable[None]]
"""Publish ``(topic, key, value)`` messages and wait until the broker has them all."""


class RecordLike(Protocol):
    """What the processor reads of a consumed record (aiokafka's, Faust's, RawRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True)
class RawRecord:
    """A consumed Kafka record, for tests and other callers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def topic_models(settings: Settings) -> dict[str, type[Event]]:
    return {
        settings.topic_orders: OrderEvent,
        settings.topic_clicks: ClickEvent,
        settings.topic_promotions: PromotionEvent,
        settings.topic_inventory: InventoryEvent,
    }


@dataclass(frozen=True)
class Prepared:
    """A decoded and planned batch, waiting to be committed."""

    batch: list[Incoming]
    plan: BatchPlan
    watermarks: dict[tuple[str, int], int]
    received_ms: int
    offsets: dict[tuple[str, int], int]
    """Per topic-partition, the next offset to read once the batch is applied (dead
    letters included): recorded with the features (docs/feature-store.md, "Offsets")."""


class StreamProcessor:
    """Decode, validate, dead-letter, apply exactly once, close windows."""

    def __init__(
        self, settings: Settings, sink: Sink, emit: Emit, metrics: StreamMetrics | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else StreamMetrics()
        """Prometheus metrics, counted per batch (:mod:`streams.observability.metrics`)."""
        self.sink = sink
        self.emit = emit
        self.layout = layout_of(settings)
        self.retention = retention_of(settings)
        self.models = topic_models(settings)
        self.grace_ms = settings.grace_seconds * 1000
        self.window_ms = settings.window_seconds * 1000
        self.watermarks: dict[tuple[str, int], int] = {}
        self._loaded = False
        self._publishing: asyncio.Future[None] | None = None
        self._windows_in_flight: set[tuple[str, int, int]] = set()
        self._scripts = 0
        self._dropped: dict[tuple[str, int, int], int] = {}
        """Windows forgotten by the store -> how many scripts had been handed over then."""
        self.expiry = ExpiryMemo()
        self.counts = {
            "events": 0,
            "duplicates": 0,
            "late": 0,
            "dead_letters": 0,
            "windows_closed": 0,
        }

    def forget_watermarks(self) -> None:
        """Reload the watermarks from the store before the next batch (after a rebalance)."""
        self._loaded = False

    async def _load_watermarks(self) -> None:
        if self._loaded:
            return
        for field, value in (await self.sink.watermarks()).items():
            topic, _, part = field.rpartition(":")
            tp = (topic, int(part))
            self.watermarks[tp] = max(value, self.watermarks.get(tp, value))
        self._loaded = True

    async def dead_letter(self, record: RecordLike, reason: str) -> None:
        original = record.value or b""
        truncated = len(original) > DEAD_LETTER_ORIGINAL_BYTES
        letter = DeadLetter(
            original=original[:DEAD_LETTER_ORIGINAL_BYTES],
            truncated=truncated,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason[:4096],
            received_at=datetime.now(UTC),
        )
        await self.emit([(self.settings.topic_dlq, record.key, letter.to_json())])
        await self.sink.incr_stat("dead_letters", 1)
        self.counts["dead_letters"] += 1
        self.metrics.dead_letters.labels(dead_letter_reason(reason)).inc()
        log.warning(
            "dead letter at offset %d: %s",
            record.offset,
            reason[:200],
            extra=context(topic_partition=f"{record.topic}:{record.partition}"),
        )

    async def process(self, records: Sequence[RecordLike]) -> None:
        """Process one batch; returns when its effects are durable in Redis and the windows
        it closed are published."""
        prepared = await self.prepare(records)
        if prepared is not None:
            await self.commit(prepared)
        await self.flush()

    async def flush(self) -> None:
        """Wait until the closed windows handed to the background are published."""
        while self._publishing is not None and not self._publishing.done():
            await asyncio.shield(self._publishing)

    async def prepare(self, records: Sequence[RecordLike]) -> Prepared | None:
        """The CPU half of a batch: decode, dead-letter what fails, plan the store update.

        The watermarks advance here already, so the next batch can be prepared while this
        one is committed (:meth:`commit`); lateness is judged in arrival order either way.
        """
        received_ms = int(time.time() * 1000)
        await self._load_watermarks()
        if records:
            self._count(self.metrics.consumed, records)
        batch: list[Incoming] = []
        models = self.models
        for rec in records:
            model = models.get(rec.topic)
            if model is None:
                await self.dead_letter(rec, f"no event type is consumed from topic {rec.topic!r}")
                continue
            value = rec.value
            if value is None:
                await self.dead_letter(rec, "empty message (null value)")
                continue
            try:
                event = fast_decode(model, value)
                if event is None:
                    event = decode(model, value)
            except SchemaError as exc:
                await self.dead_letter(rec, str(exc))
                continue
            except Exception as exc:  # never crash on input
                await self.dead_letter(rec, f"undecodable: {type(exc).__name__}: {exc}")
                continue
            batch.append(
                Incoming(rec.topic, rec.partition, rec.offset, event, epoch_ms(event.event_time))
            )
        offsets = next_offsets(records)
        if not batch:
            if offsets:  # all dead letters: their offsets are consumed all the same
                await record_offsets(self.sink, self.layout, self.retention, offsets)
            return None
        before = dict(self.watermarks)
        plan = plan_batch(
            batch,
            self.layout,
            self.retention,
            watermarks=before,
            grace_ms=self.grace_ms,
            window_ms=self.window_ms,
        )
        self.watermarks.update(plan.watermarks)
        return Prepared(batch, plan, before, received_ms, offsets)

    async def commit(self, prepared: Prepared) -> None:
        """The I/O half: apply exactly once, then publish the windows that closed."""
        self._scripts += 1
        index = self._scripts  # the store script this commit hands to Redis (in order)
        started = time.perf_counter()
        plan, duplicates, due = await apply_batch(
            self.sink,
            prepared.batch,
            self.layout,
            self.retention,
            watermarks=prepared.watermarks,
            grace_ms=self.grace_ms,
            window_ms=self.window_ms,
            received_ms=prepared.received_ms,
            plan=prepared.plan,
            memo=self.expiry,
            offsets=prepared.offsets,
        )
        metrics = self.metrics
        metrics.script_seconds.observe(time.perf_counter() - started)
        self.counts["events"] += plan.events
        self.counts["duplicates"] += duplicates
        self.counts["late"] += plan.late
        first, last = prepared.batch[0], prepared.batch[-1]
        if first.topic == last.topic:  # an agent's batch: one partition's records
            metrics.applied.labels(first.topic).inc(plan.events)
            if duplicates:
                metrics.duplicates.labels(first.topic).inc(duplicates)
        else:  # several topics (a caller's mixed batch): split by topic, pro rata
            self._count(metrics.applied, prepared.batch, plan.events)
            if duplicates:
                self._count(metrics.duplicates, prepared.batch, duplicates)
        if plan.late:
            metrics.late.labels(first.topic).inc(plan.late)
            log.info(
                "%d late events applied to their historical buckets",
                plan.late,
                extra=context(topic_partition=f"{first.topic}:{first.partition}"),
            )
        # a window published and forgotten after this batch's script ran was reported by
        # it all the same: that report is stale (the store keeps any window not yet
        # published, so skipping a report never loses one)
        dropped = self._dropped
        fresh = [
            d for d in due if d[:3] not in self._windows_in_flight and dropped.get(d[:3], 0) < index
        ]
        for key in [k for k, at in dropped.items() if at < index - 64]:
            del dropped[key]
        if fresh:
            await self.flush()  # one batch of windows on its way at a time
            self._publish_in_background(fresh)

    @staticmethod
    def _count(counter: Any, items: Sequence[Any], total: int | None = None) -> None:
        """Add ``total`` (default: one per item) to ``counter`` by the items' topics.

        An agent's batch is one partition's records: when the first and last items share a
        topic the batch counts under it without a look at every item (per batch, not per
        event); only a caller's batch that starts and ends on different topics is split."""
        first, last = items[0].topic, items[-1].topic
        n = len(items)
        total = n if total is None else total
        if first == last:
            counter.labels(first).inc(total)
            return
        by_topic: dict[str, int] = {}
        for item in items:
            by_topic[item.topic] = by_topic.get(item.topic, 0) + 1
        for topic, count in by_topic.items():
            counter.labels(topic).inc(round(total * count / n))

    def _publish_in_background(self, due: list[DueWindow]) -> None:
        """Publish ``due`` while the next batch's store update runs.

        Safe to overlap: the store keeps a window (and reports it due again with every
        later batch of its partition) until :meth:`publish_windows` has it on the broker,
        so a crash in between republishes it; windows already on their way are not handed
        over twice.
        """
        keys = {d[:3] for d in due}
        self._windows_in_flight |= keys

        async def publish() -> None:
            try:
                await self.publish_windows(due)
            except Exception:  # the store still has them: a later batch reports them again
                log.exception("publishing %d closed windows failed; they stay due", len(due))
            finally:
                self._windows_in_flight -= keys

        self._publishing = asyncio.ensure_future(publish())

    async def publish_windows(self, due: Sequence[DueWindow]) -> None:
        """Publish ``windows.closed`` for windows the watermark has passed by the grace.

        The store forgets a window only after the broker has the messages, so a crash in
        between publishes it again (at least once).
        """
        now = datetime.now(UTC)
        out: list[Outgoing] = []
        for topic, partition, start, skus in due:
            if not skus:
                continue
            # built without re-validation: the SKUs come from validated events
            message = WindowClosed.model_construct(
                window=Window.model_construct(
                    start=datetime.fromtimestamp(start / 1000, tz=UTC),
                    end=datetime.fromtimestamp((start + self.window_ms) / 1000, tz=UTC),
                ),
                partition=partition,
                skus=skus,
                closed_at=now,
            )
            out.append(
                (
                    self.settings.topic_windows_closed,
                    f"{topic}:{partition}".encode(),
                    message.to_json(),
                )
            )
        if out:
            await self.emit(out)
        keys = [(topic, partition, start) for topic, partition, start, _ in due]
        await self.sink.drop_windows(due)
        for key in keys:  # scripts handed over until now may still report it (see commit)
            self._dropped[key] = self._scripts
        await self.sink.incr_stat("windows_closed", len(due))
        self.counts["windows_closed"] += len(due)
        self.metrics.windows_closed.inc(len(due))
        if log.isEnabledFor(logging.INFO):
            for topic, partition, start, skus in due:
                log.info(
                    "window closed: %d SKUs changed",
                    len(skus),
                    extra=context(
                        topic_partition=f"{topic}:{partition}",
                        window=datetime.fromtimestamp(start / 1000, tz=UTC).isoformat(),
                    ),
                )
