"""``demandcast bench latency``: windows through the live path, timed end to end.

The run uses topics, a consumer group and a Redis prefix of its own:

1. ``demandcast worker`` (the stream worker) and ``demandcast forecaster`` start as
   processes of their own, with the serving model of the registry (the baseline when
   there is none);
2. for each of ``windows + 1`` event-time hours, one order for each of N SKUs is produced
   in a burst (encoded before the run), then the bench waits ``interval`` seconds: the
   next hour's events move the watermark past the previous window, which closes with N
   changed SKUs;
3. a consumer of ``forecasts`` notes when each forecast arrives. A window's latency is
   the largest, over its SKUs, of (forecast received − the ``closed_at`` of the
   ``windows.closed`` message that listed the SKU): from the watermark passing the
   window's end to the last ``Forecast`` of that window on the topic.

Besides the latencies: both workers' peak resident memory, and what Redis's
``used_memory`` grew by over the run (``windows + 2`` hours of one order per SKU: the
features, the daily series, the event ids remembered for dedup, the latest forecasts),
also per SKU-hour.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from schemas import OrderEvent, WindowClosed, decode
from streams.kafka.consumer import new_consumer, take
from streams.settings import Settings
from streams.store.keys import layout_of


def _window_messages(settings: Settings, stop: threading.Event, sink: dict[str, Any]) -> None:
    """Collect WindowClosed and Forecast messages with their arrival times."""
    consumer = new_consumer(
        settings,
        f"{settings.app_id}-bench-observer-{uuid.uuid4().hex[:6]}",
        {"auto.offset.reset": "earliest", "fetch.wait.max.ms": 10},
    )
    consumer.subscribe([settings.topic_windows_closed, settings.topic_forecasts])
    closed_at: dict[tuple[datetime, str], float] = {}
    arrivals: dict[datetime, list[tuple[str, float]]] = defaultdict(list)
    versions: set[str] = set()
    ends: dict[bytes, datetime] = {}
    try:
        while not stop.is_set():
            batch = take(consumer, 5000, 0.05)
            now = time.time()  # when these messages reached the consumer, before parsing
            for msg in batch:
                if msg.error() is not None:
                    continue
                if msg.topic() == settings.topic_windows_closed:
                    wc = decode(WindowClosed, msg.value() or b"")
                    for sku in wc.skus:
                        closed_at[(wc.window.end, sku)] = wc.closed_at.timestamp()
                else:
                    sku, end, version = _forecast_head(msg.key(), msg.value() or b"", ends)
                    arrivals[end].append((sku, now))
                    versions.add(version)
    finally:
        consumer.close()
    sink.update(closed_at=closed_at, arrivals=arrivals, versions=versions)


_HEAD = re.compile(rb'"window":\{"start":"[^"]*","end":"([^"]+)"\},"model_version":"([^"]+)"')


def _forecast_head(
    key: bytes | None, value: bytes, ends: dict[bytes, datetime]
) -> tuple[str, datetime, str]:
    """SKU, window end and model version of a ``Forecast`` message.

    The observer shares the two CPUs with the system it measures: it reads the window and
    the version from the head of the payload (where the forecast worker writes them) and
    the SKU from the key, instead of parsing 3 KB of JSON per forecast; anything else is
    parsed in full.
    """
    head = _HEAD.search(value, 0, 400)
    if key is None or head is None:
        fc = orjson.loads(value)
        return fc["sku"], datetime.fromisoformat(fc["window"]["end"]), fc["model_version"]
    end = ends.get(head[1])
    if end is None:
        end = ends[head[1]] = datetime.fromisoformat(head[1].decode())
    return key.decode(), end, head[2].decode()


def _hash(client: Any, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(key).items()}


def _used_memory(client: Any) -> int:
    """Redis's ``used_memory`` now, in bytes (the whole server: run on a Redis of its own
    for a figure of this benchmark's keys alone)."""
    return int(client.info("memory")["used_memory"])


def _wait(predicate: Any, procs: tuple[Any, ...], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        for proc in procs:
            proc.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the live path did not respond within {timeout_s:.0f}s")
        time.sleep(0.1)


T0 = datetime(2011, 6, 1, tzinfo=UTC)
"""The event time of the benchmark's first hour (hour -1 is the warm-up)."""


def _hour_of_orders(codes: list[str], hour: int) -> list[tuple[bytes, bytes]]:
    """One order per SKU in the hour, in event-time order, as Kafka (key, value)."""
    from streams.history.sources import key_of

    start = T0 + timedelta(hours=hour)
    burst = [
        OrderEvent(
            event_id=f"bench-{hour}-{i}",
            event_time=start + timedelta(seconds=i % 3600),
            order_id=f"{hour}-{i}",
            sku=code,
            quantity=1 + (i + hour) % 5,
            unit_price=2.5,
        )
        for i, code in enumerate(codes)
    ]
    burst.sort(key=lambda event: event.event_time)
    return [(key_of(event), event.to_json()) for event in burst]


@dataclass
class _LivePath:
    """The two workers under test, the orders to send them and the stats they keep."""

    settings: Settings
    client: Any
    producer: Any
    procs: tuple[Any, ...]
    bursts: dict[int, list[tuple[bytes, bytes]]]
    timeout_s: float

    def send(self, hour: int) -> None:
        for key, value in self.bursts.pop(hour):
            self.producer.send(self.settings.topic_orders, value, key)
        self.producer.deliver(60)

    def stats(self) -> dict[str, str]:
        return _hash(self.client, layout_of(self.settings).stats)

    def forecaster_stats(self) -> dict[str, str]:
        return _hash(self.client, layout_of(self.settings).forecaster_stats)

    def drive(self, skus: int, windows: int, interval_s: float) -> None:
        """The warm-up hour, then ``windows + 1`` hours ``interval_s`` apart; returns when
        the forecast worker has done every window (or ``timeout_s`` has passed)."""
        # a warm-up hour: both workers have joined their groups and loaded the model
        self.send(-1)
        _wait(lambda: self.stats().get("events", "0") == str(skus), self.procs, self.timeout_s)
        for hour in range(windows + 1):
            self.send(hour)
            if hour == 0:
                _wait(
                    lambda: int(self.forecaster_stats().get("windows", 0)),
                    self.procs,
                    self.timeout_s,
                )
            time.sleep(interval_s)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            stats = self.forecaster_stats()
            windows_done = int(stats.get("windows", 0)) + int(stats.get("coalesced", 0))
            if windows_done >= windows + 1:  # and the warm-up window
                break
            for proc in self.procs:
                proc.check()
            time.sleep(0.5)


def bench_latency(
    settings: Settings,
    skus: int,
    windows: int = 20,
    interval_s: float = 2.0,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); return its JSON-able report."""
    import redis

    from streams.kafka.admin import ensure_topics, remove_namespace
    from streams.kafka.producer import Producer, producer_config
    from streams.serving.model_holder import serving_device
    from streams.stack.processes import ChildProcess

    s = settings.namespaced(f"lat-{uuid.uuid4().hex[:8]}").model_copy(
        update={"forecast_max_pending_windows": 2, "grace_seconds": 0}
    )
    ensure_topics(s, s.all_topics())
    codes = [f"BENCH{i:06d}" for i in range(skus)]
    client = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    stop = threading.Event()
    seen: dict[str, Any] = {}
    observer = threading.Thread(target=_window_messages, args=(s, stop, seen), daemon=True)
    observer.start()
    logs = Path(tempfile.mkdtemp(prefix="demandcast-bench-latency-"))
    stream = ChildProcess.demandcast(s, "worker", log=logs / "worker.log")
    forecaster = ChildProcess.demandcast(s, "forecaster", log=logs / "forecaster.log")
    # encoded before the clock starts: the load generator shares the CPUs with the system
    bursts = {hour: _hour_of_orders(codes, hour) for hour in range(-1, windows + 1)}
    producer = Producer(producer_config(s), what="bench orders")
    live = _LivePath(s, client, producer, (stream, forecaster), bursts, timeout_s)
    used_before = _used_memory(client)
    try:
        live.drive(skus, windows, interval_s)
        time.sleep(2.0)  # let the observer read the last forecasts
        forecaster_rss = forecaster.peak_rss_mb()
        stream_rss = stream.peak_rss_mb()
        redis_added = _used_memory(client) - used_before
    finally:
        stop.set()
        observer.join(30)
        forecaster.stop()
        stream.stop()
    fc_stats = live.forecaster_stats()
    remove_namespace(s, client, s.all_topics())
    client.close()
    return {
        **_latencies(seen, fc_stats),
        "model_versions": sorted(seen.get("versions", ())),
        "forecaster_rss_mb": forecaster_rss,
        "worker_rss_mb": stream_rss,
        "redis_added_mb": round(redis_added / 1e6, 1),
        "redis_bytes_per_sku_hour": round(redis_added / (skus * (windows + 2)), 1),
        "interval_s": interval_s,
        "device": serving_device(settings.device),
    }


def _latencies(seen: dict[str, Any], fc_stats: dict[str, str]) -> dict[str, Any]:
    """The window latencies from what the observer saw, and the forecast worker's figures."""
    closed_at: dict[tuple[datetime, str], float] = seen.get("closed_at", {})
    arrivals: dict[datetime, list[tuple[str, float]]] = seen.get("arrivals", {})
    latencies = []
    sizes = []
    for end, items in sorted(arrivals.items()):
        if end <= T0:
            continue  # the warm-up window
        lags = [t - closed_at[(end, sku)] for sku, t in items if (end, sku) in closed_at]
        if lags:
            latencies.append(max(lags))
            sizes.append(len(items))
    busy = float(fc_stats.get("busy_s", 0.0))
    forecasts = int(fc_stats.get("forecasts", 0))
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {
        "windows": len(latencies),
        "skus_per_window": int(np.median(sizes)) if sizes else 0,
        "p50_s": round(float(np.percentile(lat, 50)), 3),
        "p99_s": round(float(np.percentile(lat, 99)), 3),
        "max_s": round(float(np.max(lat)), 3),
        "forecasts_per_s": round(forecasts / busy, 1) if busy else None,
        "forecasts": forecasts,
        "coalesced": int(fc_stats.get("coalesced", 0)),
        "forecaster_seconds": {
            name: round(float(fc_stats.get(f"{name}_s", 0.0)), 3)
            for name in ("waited", "read", "inputs", "model", "publish", "alerts")
        },
    }
