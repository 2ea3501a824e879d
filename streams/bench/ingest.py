"""``demandcast bench ingest``: N real UCI events through one stream worker, measured.

The run uses topics, a consumer group and a Redis prefix of its own (removed at the end):

1. the first N events of the UCI log are produced to a fresh ``orders`` topic;
2. ``raw_consume_per_s``: a plain confluent-kafka consumer reads them with JSON parsing;
3. ``bare_faust_per_s``: a Faust agent that only does ``take_events()`` and JSON parsing
   (:mod:`streams.bench.bare_app`);
4. ``events_per_s``: ``demandcast worker`` from an empty state, first event consumed to
   last feature durable in Redis (both instants recorded by the worker in Redis);
5. ``lost`` / ``duplicated``: the consistency check of :mod:`streams.history.check`.

The three measurements run one after another, so they do not compete for the CPU.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from streams.exceptions import StreamsError
from streams.kafka.consumer import new_consumer
from streams.settings import Settings
from streams.stack.processes import ChildProcess
from streams.store.keys import layout_of

DEFAULT_LOG = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "online_retail"
    / ("online_retail.csv.gz")
)


def _raw_consume(settings: Settings, topic: str, n: int) -> float:
    import orjson

    consumer = new_consumer(
        settings,
        f"raw-{uuid.uuid4().hex}",
        {"auto.offset.reset": "earliest", "fetch.max.bytes": 64 * 1024 * 1024},
    )
    consumer.subscribe([topic])
    loads = orjson.loads
    count = 0
    first = None
    deadline = time.monotonic() + 300
    try:
        while count < n and time.monotonic() < deadline:
            batch = consumer.consume(10_000, timeout=1.0)
            if batch and first is None:
                first = time.monotonic()
            for msg in batch:
                if msg.error() is None:
                    loads(msg.value() or b"null")
                    count += 1
    finally:
        consumer.close()
    if first is None or count < n:
        raise StreamsError(f"the raw consumer read {count} of {n} events")
    return n / (time.monotonic() - first)


def _bare_faust(settings: Settings, n: int, workdir: Path) -> float:
    out = workdir / "bare.json"
    argv = [sys.executable, "-m", "streams.bench.bare_app", str(n), str(out)]
    with ChildProcess(settings, argv, log=workdir / "bare.log") as proc:
        deadline = time.monotonic() + 600
        while not out.exists():
            if not proc.alive() or time.monotonic() > deadline:
                raise StreamsError(f"the bare Faust agent did not finish; see {workdir}/bare.log")
            time.sleep(0.2)
    result = json.loads(out.read_text())
    return float(result["count"]) / float(result["seconds"])


def _worker(settings: Settings, n: int, workdir: Path, client: Any) -> tuple[float, float, float]:
    """(events/s, seconds, peak RSS MB) of one stream worker from an empty state."""
    stats_key = layout_of(settings).stats
    rss = 0.0
    with ChildProcess.demandcast(settings, "worker", log=workdir / "worker.log") as proc:
        deadline = time.monotonic() + 900
        while True:
            done = int(client.hget(stats_key, "events") or 0)
            rss = max(rss, proc.peak_rss_mb() or 0.0)
            if done >= n:
                break
            if not proc.alive() or time.monotonic() > deadline:
                raise StreamsError(
                    f"the worker stopped at {done} of {n} events; see {workdir}/worker.log"
                )
            time.sleep(0.2)
        rss = max(rss, proc.peak_rss_mb() or 0.0)
    first = int(client.hget(stats_key, "first_received_ms"))
    last = int(client.hget(stats_key, "last_durable_ms"))
    seconds = max(last - first, 1) / 1000
    return n / seconds, seconds, rss


def bench_ingest(
    settings: Settings, n: int, *, log: Path | None = None, quiet: bool = False, keep: bool = False
) -> dict[str, Any]:
    """Run the benchmark; return the JSON-able report."""
    import tempfile

    import redis

    from streams.history.check import compare, recompute
    from streams.history.replay import load_events, produce_events
    from streams.kafka.admin import ensure_topics, remove_namespace, stream_topics
    from streams.store.reader import FeatureReader

    log = log or DEFAULT_LOG
    tag = uuid.uuid4().hex[:8]
    s = settings.namespaced(f"bench-{tag}")
    workdir = Path(tempfile.mkdtemp(prefix=f"demandcast-bench-{tag}-"))

    def say(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr, flush=True)

    loaded = load_events(log, "uci", limit=n)
    if len(loaded.events) < n:
        raise StreamsError(
            f"the log has only {len(loaded.events)} events; use --events "
            f"{len(loaded.events)} or less"
        )
    ensure_topics(s)
    client = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    try:
        say(f"producing {n:,} events to {s.topic_orders} ...")
        produce_events(s, loaded.events)
        say("raw consumer ...")
        raw = _raw_consume(s, s.topic_orders, n)
        say("bare Faust agent ...")
        bare = _bare_faust(s, n, workdir)
        say("stream worker ...")
        rate, seconds, rss = _worker(s, n, workdir, client)
        say("consistency check ...")
        layout = layout_of(s)
        result = compare(recompute(loaded.events), FeatureReader(client, layout))
        raw_stats: dict[Any, Any] = client.hgetall(layout.stats)
        stats = {k.decode(): int(v) for k, v in raw_stats.items()}
    finally:
        if not keep:
            remove_namespace(s, client, stream_topics(s))
        client.close()
    return {
        "events": n,
        "seconds": round(seconds, 3),
        "events_per_s": round(rate, 1),
        "bare_faust_per_s": round(bare, 1),
        "raw_consume_per_s": round(raw, 1),
        "lost": result.lost + result.mismatched,
        "duplicated": result.double_counted,
        "matching_buckets": result.matching,
        "worker_rss_mb": round(rss, 1),
        "duplicates_skipped": stats.get("duplicates", 0),
        "late": stats.get("late", 0),
        "windows_closed": stats.get("windows_closed", 0),
        "batch_max_events": s.batch_max_events,
        "partitions": s.partitions,
    }
