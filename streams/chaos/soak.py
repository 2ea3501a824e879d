"""``demandcast chaos soak --minutes N`` (issue 17, item 2): the slice replayed in a loop
through the real workers on the chaos stack, each loop's events moved forward in event
time by the slice's span (and given new event ids, so that they are new events, not
duplicates), while every process's resident memory and Redis's ``used_memory`` are
sampled; the report is the growth per hour of each (a linear fit of the samples after the
first loop) and, per loop, what the consistency check found lost or doubled.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from schemas import Event
from streams.chaos.stack import DEFAULT_PORTS, ChaosStack, chaos_settings
from streams.chaos.workload import load_slice
from streams.settings import Settings
from streams.stack.processes import proc_status_mb

DAY_MS = 86_400_000
SERIES = ("worker_rss_mb", "forecaster_rss_mb", "redis_rss_mb", "kafka_rss_mb", "redis_used_mb")
"""What each sample holds (MB), and what growth per hour is reported for."""


def loop_span_ms(events: list[tuple[int, Event]]) -> int:
    """How far each loop moves the slice in event time: its span rounded up to whole days
    (so a loop's hourly and daily buckets line up with the first loop's, and no bucket
    holds events of two loops), at least a day."""
    if not events:
        return DAY_MS
    span = events[-1][0] - events[0][0] + 1
    return max(1, -(-span // DAY_MS)) * DAY_MS


def shifted(events: list[tuple[int, Event]], loop: int, span_ms: int) -> list[tuple[int, Event]]:
    """The slice as loop ``loop`` (0: unchanged) replays it: every event moved ``loop *
    span_ms`` forward in event time, its id suffixed with the loop (a new event)."""
    if loop == 0:
        return list(events)
    delta_ms = loop * span_ms
    delta = timedelta(milliseconds=delta_ms)
    return [
        (
            t + delta_ms,
            e.model_copy(
                update={"event_id": f"{e.event_id}~{loop}", "event_time": e.event_time + delta}
            ),
        )
        for t, e in events
    ]


def growth_per_hour(samples: list[tuple[float, float | None]]) -> float | None:
    """The least-squares slope of ``(seconds, value)`` samples, per hour; None with fewer
    than two samples or no time between them."""
    points = [(t, float(v)) for t, v in samples if v is not None]
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mt) * (v - mv) for t, v in points)
    return cov / var * 3600.0


@dataclass
class SoakOptions:
    log: Path
    minutes: float = 10.0
    events: int = 30_000
    sample_s: float = 5.0
    check: bool = True
    ports: tuple[int, int, int] = DEFAULT_PORTS
    workdir: Path | None = None
    keep: bool = False


@dataclass
class _Sampler:
    """Every ``every_s`` on a thread: the resident memory of each process and Redis's
    ``used_memory``, in MB, with the seconds since the soak started."""

    pids: Callable[[], dict[str, int | None]]
    redis_used: Callable[[], float | None]
    started: float
    every_s: float = 5.0
    samples: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        row: dict[str, Any] = {"t": round(time.monotonic() - self.started, 2)}
        for name, pid in self.pids().items():
            row[f"{name}_rss_mb"] = proc_status_mb(pid, "VmRSS")
        row["redis_used_mb"] = self.redis_used()
        self.samples.append(row)

    def start(self) -> _Sampler:
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.sample()


def run_soak(
    settings: Settings,
    opts: SoakOptions,
    on_loop: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Loop the shifted slice for ``opts.minutes`` (a loop started is finished); return the
    report: ``loops`` (per loop: events, seconds, lost / double when checked; the check is
    thinned out to every 2nd, 4th, ... loop once it takes over half a loop), the growth per
    hour of every sampled series after the first loop, the first and last samples, ``ok``
    and ``problems``."""
    import redis

    from streams.chaos.scenarios import ChaosContext, Scenario, _check
    from streams.history.replay import produce_events
    from streams.stack.embedded import _read_pid

    root = opts.workdir or Path(tempfile.mkdtemp(prefix="demandcast-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    s = chaos_settings(settings, root, opts.ports)
    stack = ChaosStack(s)
    loops: list[dict[str, Any]] = []
    sampler: _Sampler | None = None
    run: Scenario | None = None
    first_loop_end: float | None = None
    try:
        stack.up()
        base = load_slice(opts.log, opts.events)
        span_ms = loop_span_ms(base)
        ctx = ChaosContext(s, stack, base, root, random.Random(0))
        run = Scenario(ctx, "soak")
        run.monitor.stop()  # the soak samples memory, not the scenarios' 0.2 s progress
        run.start_forecaster()
        run.start_worker()
        rs = run.settings
        client = redis.Redis.from_url(rs.redis_url, **rs.redis_kwargs())

        def redis_used() -> float | None:
            try:
                return round(int(client.info("memory")["used_memory"]) / 1e6, 2)
            except redis.RedisError:
                return None

        def pids() -> dict[str, int | None]:
            assert run is not None
            return {
                "worker": run.worker.pid if run.worker else None,
                "forecaster": run.forecaster.pid if run.forecaster else None,
                "redis": _read_pid(stack.embedded.redis_pid_file),
                "kafka": _read_pid(stack.embedded.kafka_pid_file),
            }

        started = time.monotonic()
        sampler = _Sampler(pids, redis_used, started, opts.sample_s).start()
        every: list[tuple[int, Event]] = []
        loop = 0
        check_every = 1
        """Loops between consistency checks: doubled whenever a check took more than half
        as long as its loop (it reads the whole history, which grows every loop)."""
        while loop == 0 or time.monotonic() - started < opts.minutes * 60:
            t0 = time.monotonic()
            events = shifted(base, loop, span_ms)
            produce_events(rs, events)
            every += events
            run.settle(len(every))
            row: dict[str, Any] = {
                "loop": loop,
                "events": len(events),
                "applied": run.stats().get("events", 0),
                "duplicates": run.stats().get("duplicates", 0),
                "seconds": round(time.monotonic() - t0, 1),
            }
            if opts.check and (loop % check_every == 0):
                c0 = time.monotonic()
                check = _check(rs, every)
                row["lost"] = check.lost + check.mismatched
                row["double"] = check.double_counted + check.mismatched
                row["check_s"] = round(time.monotonic() - c0, 1)
                if row["check_s"] > row["seconds"] / 2:  # the check grows with the history
                    check_every *= 2
                if row["lost"] or row["double"]:
                    run.problems.append(
                        f"loop {loop}: {row['lost']} buckets lost, {row['double']} doubled, "
                        f"e.g. {check.examples[:3]}"
                    )
            if row["applied"] != len(every):
                run.problems.append(f"loop {loop}: {row['applied']} applied, {len(every)} sent")
            row["redis_used_mb"] = redis_used()
            loops.append(row)
            if on_loop is not None:
                on_loop(row)
            if first_loop_end is None:
                first_loop_end = time.monotonic() - started
            loop += 1
        sampler.stop()
        client.close()
        fc = _forecaster_stats(rs)
        report = _report(opts, loops, sampler.samples, first_loop_end or 0.0, fc, run.problems)
        return {"loop_shift_days": span_ms // DAY_MS, **report}
    finally:
        if sampler is not None:
            sampler.stop()
        if run is not None:
            for child in (run.forecaster, run.worker):
                if child is not None:
                    child.stop()
        stack.down()
        if not opts.keep:
            shutil.rmtree(root, ignore_errors=True)


def _forecaster_stats(settings: Settings) -> dict[str, float]:
    import redis

    from streams.store.keys import layout_of

    client = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    try:
        raw = client.hgetall(layout_of(settings).forecaster_stats)
    finally:
        client.close()
    out: dict[str, float] = {}
    for k, v in raw.items():
        try:
            out[k.decode() if isinstance(k, bytes) else k] = float(v)
        except ValueError:
            continue
    return out


def _report(
    opts: SoakOptions,
    loops: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    after_s: float,
    fc: dict[str, float],
    problems: list[str],
) -> dict[str, Any]:
    later = [row for row in samples if row["t"] >= after_s]
    growth = {
        name: _round(growth_per_hour([(row["t"], row.get(name)) for row in later]))
        for name in SERIES
    }
    events = sum(row["events"] for row in loops)
    first_used = loops[0].get("redis_used_mb") if loops else None
    last_used = loops[-1].get("redis_used_mb") if loops else None
    per_event = None
    if first_used is not None and last_used is not None and len(loops) > 1:
        later_events = events - loops[0]["events"]
        per_event = round((last_used - first_used) * 1e6 / later_events, 1)
    return {
        "minutes": opts.minutes,
        "events_per_loop": opts.events,
        "loops": loops,
        "events": events,
        "forecasts": int(fc.get("forecasts", 0)),
        "windows": int(fc.get("windows", 0)),
        "coalesced": int(fc.get("coalesced", 0)),
        "samples": len(samples),
        "fit_after_s": round(after_s, 1),
        "growth_per_hour_mb": growth,
        "redis_bytes_per_event": per_event,
        "first_sample": samples[0] if samples else None,
        "fit_first_sample": later[0] if later else None,
        "last_sample": samples[-1] if samples else None,
        "per_minute": _per_minute(samples),
        "ok": not problems,
        "problems": problems,
    }


def _per_minute(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first sample of every minute of the soak (to tell a plateau from a slope)."""
    out: dict[int, dict[str, Any]] = {}
    for row in samples:
        out.setdefault(int(row["t"] // 60), row)
    return [out[m] for m in sorted(out)]


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)
