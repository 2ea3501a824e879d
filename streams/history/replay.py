"""Replay a historical log into Kafka: event-time order, keyed by SKU, idempotent producer.

:func:`load_events` reads a log with :mod:`streams.history.sources`, keeps the events inside
``[start, end)``, sorts them by event time (stable: file order breaks ties) and keeps the
first ``limit``; rejected rows are counted by reason, with the first of each (line and
detail) kept as an example. :func:`replay` produces them with an idempotent confluent-kafka
producer at full speed or ``speed``× real time, and returns a :class:`ReplaySummary`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from schemas import Event
from streams.exceptions import DeliveryError, ReplayError
from streams.history.sources import Rejected, iter_source, key_of, topic_of
from streams.kafka.producer import Producer, producer_config
from streams.settings import Settings
from streams.store.keys import epoch_ms


@dataclass
class Loaded:
    """Events of a log ready to replay, and what was left out."""

    events: list[tuple[int, Event]]
    rows_read: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    first_rejected: dict[str, Rejected] = field(default_factory=dict)
    out_of_range: int = 0
    over_limit: int = 0

    def rejected_examples(self) -> dict[str, str]:
        """The first rejected row of each reason, ``"line N: detail"``, most frequent first."""
        out = {}
        for reason, _n in self.rejected.most_common():
            first = self.first_rejected[reason]
            out[reason] = f"line {first.row}" + (f": {first.detail}" if first.detail else "")
        return out


@dataclass
class ReplaySummary:
    """What a replay did."""

    rows_read: int
    events_produced: int
    rejected: dict[str, int]
    out_of_range: int
    over_limit: int
    seconds: float
    by_topic: dict[str, int]
    rejected_examples: dict[str, str] = field(default_factory=dict)

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "events_produced": self.events_produced,
            "rows_rejected": self.rows_rejected,
            "rejected": self.rejected,
            "rejected_examples": self.rejected_examples,
            "out_of_range": self.out_of_range,
            "over_limit": self.over_limit,
            "by_topic": self.by_topic,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events_produced / self.seconds, 1) if self.seconds else None,
        }


def load_events(
    path: Path,
    fmt: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> Loaded:
    """The log's events in ``[start, end)``, in event-time order, at most ``limit``."""
    if limit is not None and limit < 0:
        raise ReplayError("--limit must not be negative")
    lo = epoch_ms(start) if start else None
    hi = epoch_ms(end) if end else None
    loaded = Loaded(events=[])
    for item in iter_source(path, fmt):
        loaded.rows_read += 1
        if isinstance(item, Rejected):
            loaded.rejected[item.reason] += 1
            loaded.first_rejected.setdefault(item.reason, item)
            continue
        t = epoch_ms(item.event_time)
        if (lo is not None and t < lo) or (hi is not None and t >= hi):
            loaded.out_of_range += 1
            continue
        loaded.events.append((t, item))
    loaded.events.sort(key=lambda pair: pair[0])
    if limit is not None and len(loaded.events) > limit:
        loaded.over_limit = len(loaded.events) - limit
        del loaded.events[limit:]
    return loaded


def produce_events(
    settings: Settings,
    events: list[tuple[int, Event]],
    *,
    speed: float | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Produce ``events`` (already in event-time order); return the count per topic.

    ``speed``: None for as fast as possible, else a real-time multiplier (``60`` plays an
    hour of the log in a minute).
    """
    from confluent_kafka import KafkaException

    if speed is not None and speed <= 0:
        raise ReplayError("--speed must be 'max' or a positive number")
    producer = Producer(producer_config(settings), what="events")
    by_topic: Counter[str] = Counter()
    wall0 = time.monotonic()
    first_ms = events[0][0] if events else 0
    for n, (t, event) in enumerate(events, start=1):
        if speed is not None:
            due = (t - first_ms) / 1000.0 / speed
            wait = due - (time.monotonic() - wall0)
            if wait > 0:
                producer.poll(0)
                time.sleep(wait)
        topic = topic_of(event, settings)
        value = event.to_json()
        try:
            producer.send(topic, value, key_of(event))
        except KafkaException as exc:  # pragma: no cover - configuration errors
            raise ReplayError(f"cannot produce to {topic!r}: {exc}") from None
        by_topic[topic] += 1
        if n % 5000 == 0:
            producer.poll(0)
            if on_progress is not None:
                on_progress(n)
    try:
        producer.deliver(120)
    except DeliveryError as exc:
        raise ReplayError(str(exc)) from None
    if on_progress is not None:
        on_progress(len(events))
    return dict(by_topic)


def replay(
    settings: Settings,
    path: Path,
    fmt: str,
    *,
    speed: float | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> ReplaySummary:
    """Read, order and produce a log; print a progress bar with the rate when asked."""
    from streams.kafka.admin import ensure_topics

    t0 = time.monotonic()
    loaded = load_events(path, fmt, start=start, end=end, limit=limit)
    ensure_topics(settings)
    if progress:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(
            TextColumn("replay {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>10} ev/s"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        ) as bar:
            task = bar.add_task(path.name, total=len(loaded.events), rate="-")
            p0 = time.monotonic()

            def update(n: int) -> None:
                elapsed = time.monotonic() - p0
                bar.update(task, completed=n, rate=f"{n / elapsed:,.0f}" if elapsed else "-")

            by_topic = produce_events(settings, loaded.events, speed=speed, on_progress=update)
    else:
        by_topic = produce_events(settings, loaded.events, speed=speed)
    return ReplaySummary(
        rows_read=loaded.rows_read,
        events_produced=len(loaded.events),
        rejected=dict(loaded.rejected.most_common()),
        rejected_examples=loaded.rejected_examples(),
        out_of_range=loaded.out_of_range,
        over_limit=loaded.over_limit,
        seconds=time.monotonic() - t0,
        by_topic=by_topic,
    )
