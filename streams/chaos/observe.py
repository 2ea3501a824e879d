"""What the chaos scenarios measure: progress and lag sampled while a scenario runs, the
topics read back afterwards, which closed windows no forecast covers, and the consistency
check."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streams.settings import Settings
from streams.store.keys import layout_of


@dataclass
class Sample:
    at: float
    batches: int
    events: int
    forecasts: int
    lag: int | None
    offsets: dict[str, int] = field(default_factory=dict)
    """The store's next offset per ``topic:partition`` (written with the features)."""


@dataclass
class Monitor:
    """Samples, every ``every_s`` on a thread: the stream worker's scripts and events
    (``stats``), the forecast worker's forecasts and coalesced windows (``fc:stats``, summed
    over its restarts), the store's offset per input partition and the stream worker
    group's lag on the input topics."""

    settings: Settings
    every_s: float = 0.2
    samples: list[Sample] = field(default_factory=list)
    coalesced: int = 0
    _fc_base: dict[str, int] = field(default_factory=dict)
    _fc_last: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Monitor:
        self._thread = threading.Thread(target=self._run, name="chaos-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _fc(self, raw: dict[str, int], name: str) -> int:
        """A forecast-worker counter summed over restarts (a restarted worker counts from 0)."""
        now = raw.get(name, 0)
        last = self._fc_last.get(name, 0)
        if now < last:
            self._fc_base[name] = self._fc_base.get(name, 0) + last
        self._fc_last[name] = now
        return self._fc_base.get(name, 0) + now

    def _run(self) -> None:
        import redis

        client = redis.Redis.from_url(self.settings.redis_url, **self.settings.redis_kwargs())
        lag = LagProbe(self.settings)
        layout = layout_of(self.settings)
        next_lag = 0.0
        current_lag: int | None = None
        try:
            while not self._stop.is_set():
                try:
                    stats = _ints(client.hgetall(layout.stats))
                    fc = _ints(client.hgetall(layout.forecaster_stats))
                    offsets = _ints(client.hgetall(layout.offsets))
                except redis.RedisError:  # Redis down (a fault): no sample
                    self._stop.wait(self.every_s)
                    continue
                if time.monotonic() >= next_lag:
                    current_lag = lag.total()
                    next_lag = time.monotonic() + 1.0
                forecasts = self._fc(fc, "forecasts")
                self.coalesced = self._fc(fc, "coalesced")
                self.samples.append(
                    Sample(
                        time.monotonic(),
                        stats.get("batches", 0),
                        stats.get("events", 0),
                        forecasts,
                        current_lag,
                        offsets,
                    )
                )
                self._stop.wait(self.every_s)
        finally:
            client.close()
            lag.close()

    @property
    def peak_lag(self) -> int:
        return max((s.lag for s in self.samples if s.lag is not None), default=0)

    def applying_again_after(self, t: float, base: int) -> float | None:
        """Seconds from ``t`` until the stream worker's next store script after it
        (``base``: the store's script count at ``t``, read then: after a rollback it is
        lower than the samples before)."""
        for s in self.samples:
            if s.at > t and s.batches > base:
                return round(s.at - t, 2)
        return None

    def partitions_moving_after(
        self, t: float, at_fault: dict[str, int], watched: set[str]
    ) -> float | None:
        """Seconds from ``t`` until every partition in ``watched`` has a store offset past
        the one it had at ``t`` (``at_fault``): the whole group applying again, those of a
        killed member included once the group has given them to another."""
        for s in self.samples:
            if s.at > t and all(s.offsets.get(p, -1) > at_fault.get(p, -1) for p in watched):
                return round(s.at - t, 2)
        return None


def _ints(raw: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        try:
            out[key] = int(float(v))
        except ValueError:
            continue
    return out


class LagProbe:
    """The stream worker group's lag on the input topics (committed offset to the end of
    each partition), from one consumer kept open (it never joins the group)."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import TopicPartition

        from streams.kafka.consumer import new_consumer

        self.consumer = new_consumer(settings, settings.app_id)
        self.parts = [
            TopicPartition(t, p)
            for t in settings.input_topics()
            for p in range(settings.partitions)
        ]

    def total(self) -> int | None:
        from confluent_kafka import KafkaException

        try:
            lag = 0
            for tp in self.consumer.committed(self.parts, timeout=2):
                low, high = self.consumer.get_watermark_offsets(tp, timeout=2, cached=False)
                lag += high - (tp.offset if tp.offset >= 0 else low)
            return lag
        except KafkaException:  # the broker is down (a fault): no sample
            return None

    def close(self) -> None:
        self.consumer.close()


def read_topic(settings: Settings, topic: str, idle_s: float = 3.0) -> list[Any]:
    """Every message now in ``topic`` (a throwaway group), read until ``idle_s`` of quiet."""
    from streams.kafka.consumer import new_consumer

    consumer = new_consumer(
        settings, f"chaos-read-{uuid.uuid4().hex[:8]}", {"auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + 30.0
    quiet_until = None
    try:
        while True:
            batch = consumer.consume(5000, timeout=0.5)
            out += [m for m in batch if m.error() is None]
            now = time.monotonic()
            if batch:
                quiet_until = now + idle_s
            elif now > (quiet_until if quiet_until is not None else deadline):
                break
    finally:
        consumer.close()
    return out


@dataclass
class Coverage:
    windows_closed: int
    windows_without_forecasts: int
    examples: list[str]
    forecasts: list[tuple[str, datetime, datetime]]
    """(SKU, window end, created at) of every forecast."""
    closes: list[tuple[datetime, datetime]]
    """(window end, closed at) of every ``windows.closed`` message."""


def coverage(settings: Settings) -> Coverage:
    """Closed windows (merged over input partitions, by end) and how many of them have a
    SKU that no forecast of that window or a later one covers (a coalesced window is covered
    by the newer window it was folded into)."""
    import orjson

    closed: dict[str, set[str]] = {}
    closes: list[tuple[datetime, datetime]] = []
    for m in read_topic(settings, settings.topic_windows_closed):
        doc = orjson.loads(m.value())
        end = doc["window"]["end"]
        closed.setdefault(end, set()).update(doc["skus"])
        closes.append((_ts(end), _ts(doc["closed_at"])))
    newest: dict[str, datetime] = {}
    forecasts: list[tuple[str, datetime, datetime]] = []
    for m in read_topic(settings, settings.topic_forecasts):
        doc = orjson.loads(m.value())
        end = _ts(doc["window"]["end"])
        sku = doc["sku"]
        forecasts.append((sku, end, _ts(doc["created_at"])))
        if sku not in newest or newest[sku] < end:
            newest[sku] = end
    missing: list[str] = []
    for end_text, skus in sorted(closed.items()):
        end = _ts(end_text)
        uncovered = [s for s in skus if s not in newest or newest[s] < end]
        if uncovered:
            missing.append(f"window ending {end_text}: {len(uncovered)} SKUs, e.g. {uncovered[0]}")
    return Coverage(len(closed), len(missing), missing[:5], forecasts, closes)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def first_forecast_after(cov: Coverage, fault_wall: datetime) -> float | None:
    """Seconds from ``fault_wall`` to the first forecast created after it of a window that
    first closed after it (a new forecast, not one of the backlog)."""
    first_closed: dict[datetime, datetime] = {}
    for end, at in cov.closes:
        if end not in first_closed or at < first_closed[end]:
            first_closed[end] = at
    ends_closed_after = {end for end, at in first_closed.items() if at > fault_wall}
    created = [c for _, end, c in cov.forecasts if c > fault_wall and end in ends_closed_after]
    if not created:
        return None
    return round((min(created) - fault_wall).total_seconds(), 2)


def forecast_after_restart(cov: Coverage, restart_wall: datetime) -> float | None:
    """Seconds from a forecast worker's restart to the first forecast created after it."""
    created = [c for _, _, c in cov.forecasts if c > restart_wall]
    return round((min(created) - restart_wall).total_seconds(), 2) if created else None


def dead_letters(settings: Settings) -> tuple[dict[str, Any], list[Any]]:
    """The dead letters in ``events.dlq``: the count by reason kind, and the letters."""
    from schemas import DeadLetter, decode

    letters = [decode(DeadLetter, m.value()) for m in read_topic(settings, settings.topic_dlq)]
    reasons = Counter(reason_kind(dl.reason) for dl in letters)
    return {"total": len(letters), "reasons": dict(reasons.most_common())}, letters


def reason_kind(reason: str) -> str:
    """A dead letter's free-text reason as one of a few kinds."""
    text = reason.lower()
    if "exceeds" in text and "bytes" in text:
        return "oversized"
    if "utf-8" in text or "utf8" in text or "unicode" in text:
        return "invalid_utf8"
    if "invalid json" in text or "eof" in text or ("json" in text and "parse" in text):
        return "invalid_json"
    if text.startswith("no event type"):
        return "unknown_topic"
    if text.startswith("empty message"):
        return "null_value"
    return "contract_violation"
