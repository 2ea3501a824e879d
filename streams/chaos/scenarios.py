"""The chaos scenarios: each replays the slice through real worker processes on the chaos
stack, injects its fault, and measures (:class:`Scenario` holds one scenario's live parts).

A scenario's result is one JSON object (:data:`FIELDS`); ``problems`` (not part of it) says
what went wrong and where: anything lost or counted twice, a window no forecast covers, a
dead letter missing, a process that exited without being killed, a wait that ran out.
"""

from __future__ import annotations

import random
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from schemas import Event
from streams.chaos.observe import (
    Monitor,
    coverage,
    dead_letters,
    first_forecast_after,
    forecast_after_restart,
)
from streams.chaos.stack import ChaosStack
from streams.chaos.workload import (
    TOPIC_MAX_MESSAGE_BYTES,
    Malformed,
    PacedReplay,
    late_interleaved,
    malformed_messages,
)
from streams.settings import Settings
from streams.stack.processes import ChildProcess
from streams.store.keys import layout_of

FIELDS = (
    "name",
    "events_in",
    "applied",
    "lost",
    "double",
    "dead_letters",
    "windows_closed",
    "windows_without_forecasts",
    "coalesced",
    "recovery_s",
    "first_forecast_s",
    "peak_lag",
)
WAIT_S = 240.0
"""The longest any one wait of a scenario lasts before it is reported as a problem."""


@dataclass
class ChaosContext:
    """What every scenario shares: the chaos stack's settings and stack, the slice."""

    settings: Settings
    stack: ChaosStack
    events: list[tuple[int, Event]]
    workdir: Path
    rng: random.Random
    malformed: int = 10_000
    current: Scenario | None = None
    """The scenario running now (set as it starts): the runner stops its processes and
    removes its namespace when it fails half-way."""


@dataclass
class Scenario:
    """One scenario's own namespace (topics, group, Redis prefix), processes and monitor."""

    ctx: ChaosContext
    name: str
    settings: Settings = field(init=False)
    logs: Path = field(init=False)
    worker: ChildProcess | None = None
    forecaster: ChildProcess | None = None
    second: ChildProcess | None = None
    """A second stream worker in the group (``worker-join``), None once killed."""
    monitor: Monitor = field(init=False)
    problems: list[str] = field(default_factory=list)
    recoveries: list[tuple[float, str, int, datetime]] = field(default_factory=list)
    """Monotonic times of the restarts after a fault, and what restarted (``worker``: the
    stream worker or a service it needs; ``forecaster``): recovery_s is measured from them
    to the stream worker's next store script, or the forecast worker's next forecast; the
    store's script count then, and the wall-clock time."""
    faults: list[datetime] = field(default_factory=list)
    """Wall-clock times of the faults (first_forecast_s is measured from them)."""
    events_in: int = 0
    group_kills: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    """Monotonic times a group member was killed while another went on, with the store's
    offsets then: recovery_s is measured from them until every partition that had records
    still to apply moves again (the killed member's ones once the group has reassigned them)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """A scenario's own figures, after the common ones (``late``: how late events fared)."""

    def __post_init__(self) -> None:
        tag = f"chaos-{self.name}-{uuid.uuid4().hex[:6]}"
        self.settings = self.ctx.settings.namespaced(tag).model_copy(
            update={
                "worker_group_instance_id": f"{tag}-worker",
                "forecaster_group_instance_id": f"{tag}-forecaster",
                "batch_max_events": 2000,
            }
        )
        self.logs = self.ctx.workdir / self.name
        self.logs.mkdir(parents=True, exist_ok=True)
        _create_topics(self.settings)
        self.monitor = Monitor(self.settings).start()
        self.ctx.current = self

    # --- processes -----------------------------------------------------------------------

    def start_worker(self) -> None:
        self.worker = ChildProcess.demandcast(
            self.settings, "worker", "--loglevel", "info", log=self.logs / "worker.log"
        )

    def start_forecaster(self) -> None:
        self.forecaster = ChildProcess.demandcast(
            self.settings, "forecaster", log=self.logs / "forecaster.log"
        )

    def start_second_worker(self) -> None:
        """A second stream worker in the same group (its own static member name)."""
        second = self.settings.model_copy(
            update={"worker_group_instance_id": f"{self.settings.worker_group_instance_id}-2"}
        )
        self.second = ChildProcess.demandcast(
            second, "worker", "--loglevel", "info", log=self.logs / "worker-2.log"
        )

    def second_assigned(self) -> int:
        """Partitions the second worker says it was given last (its log), 0 before any."""
        import re

        if self.second is None or self.second.log is None or not self.second.log.exists():
            return 0
        found = re.findall(r"partitions assigned: (\d+)", self.second.log.read_text())
        return int(found[-1]) if found else 0

    def kill_second_worker(self) -> None:
        """SIGKILL the second worker; the store's offsets then start its recovery clock."""
        assert self.second is not None
        self.second.proc.kill()
        self.second.proc.wait()
        self.second = None
        self.faults.append(datetime.now(UTC))
        self.group_kills.append((time.monotonic(), self.offsets()))
        time.sleep(2 * self.monitor.every_s)

    def offsets(self) -> dict[str, int]:
        import redis

        client = redis.Redis.from_url(self.settings.redis_url, **self.settings.redis_kwargs())
        try:
            raw = client.hgetall(layout_of(self.settings).offsets)
        finally:
            client.close()
        return {k.decode(): int(v) for k, v in raw.items()}  # type: ignore[union-attr]

    def kill_worker(self) -> None:
        assert self.worker is not None
        self.worker.proc.kill()
        self.worker.proc.wait()
        self.faults.append(datetime.now(UTC))
        time.sleep(2 * self.monitor.every_s)  # a sample of the state after the kill

    def kill_forecaster(self) -> None:
        assert self.forecaster is not None
        self.forecaster.proc.kill()
        self.forecaster.proc.wait()
        self.faults.append(datetime.now(UTC))
        time.sleep(2 * self.monitor.every_s)  # a sample of the state after the kill

    def restarted(self, kind: str) -> None:
        """Mark the restart after a fault (``worker`` or ``forecaster``): now."""
        base = self.stats().get("batches", 0)
        self.recoveries.append((time.monotonic(), kind, base, datetime.now(UTC)))

    def watch(self) -> None:
        """A process that exited without being killed is a problem; it is started again."""
        for which in ("worker", "forecaster", "second"):
            child: ChildProcess | None = getattr(self, which)
            if child is not None and not child.alive():
                self.problems.append(
                    f"the {which} exited by itself with {child.proc.returncode} "
                    f"(see {child.log}); started again"
                )
                {
                    "worker": self.start_worker,
                    "forecaster": self.start_forecaster,
                    "second": self.start_second_worker,
                }[which]()

    # --- waiting -------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        import redis

        client = redis.Redis.from_url(self.settings.redis_url, **self.settings.redis_kwargs())
        try:
            raw = client.hgetall(layout_of(self.settings).stats)
        except redis.RedisError:
            return {}
        finally:
            client.close()
        return {k.decode(): int(v) for k, v in raw.items()}  # type: ignore[union-attr]

    def wait(self, predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.watch()
            time.sleep(0.2)
        self.problems.append(f"gave up after {timeout_s:.0f}s waiting for {what}")
        return False

    def wait_applied(self, n: int) -> bool:
        return self.wait(lambda: self.stats().get("events", 0) >= n, f"{n} events applied")

    def wait_new_script(self) -> bool:
        """Until the (restarted) stream worker has run a store script since now."""
        base = self.stats().get("batches", 0)
        return self.wait(lambda: self.stats().get("batches", 0) > base, "the worker to apply")

    def settle(self, unique_events: int) -> None:
        """Until every event is applied, the stream worker has committed everything, and
        the forecast worker has committed every ``windows.closed`` message."""
        from streams.chaos.observe import LagProbe
        from streams.serving.lag import forecaster_lag

        self.wait_applied(unique_events)
        probe = LagProbe(self.settings)  # read now, not the monitor's last sample
        try:
            self.wait(lambda: probe.total() == 0, "the stream worker's lag to be 0")
        finally:
            probe.close()
        self.wait(lambda: _quiet_lag(forecaster_lag, self.settings), "the forecaster's lag")

    # --- the result ----------------------------------------------------------------------

    def finish(self, unique_events: int) -> dict[str, Any]:
        """Stop the processes, check and read everything back: the scenario's object."""
        self.monitor.stop()
        for child in (self.forecaster, self.second, self.worker):
            if child is not None:
                child.stop()
        check = _check(self.settings, self.ctx.events)
        cov = coverage(self.settings)
        letters, _ = dead_letters(self.settings)
        stats = self.stats()
        applied = stats.get("events", 0)
        lost = check.lost + check.mismatched
        double = check.double_counted + check.mismatched
        if lost or double:
            self.problems.append(
                f"{lost} buckets lost and {double} counted twice, e.g. {check.examples[:3]}"
            )
        if applied != unique_events:
            self.problems.append(f"{applied} events applied, expected {unique_events}")
        if cov.windows_without_forecasts:
            self.problems.append(
                f"{cov.windows_without_forecasts} windows without forecasts: {cov.examples}"
            )
        recovery = [
            self.monitor.applying_again_after(t, base)
            if kind == "worker"
            else forecast_after_restart(cov, wall)
            for t, kind, base, wall in self.recoveries
        ]
        if any(r is None for r in recovery):
            self.problems.append("nothing applied or forecast after a restart")
        final = self.offsets()
        for t, at_kill in self.group_kills:
            watched = {p for p, o in final.items() if o > at_kill.get(p, -1)}
            moved = self.monitor.partitions_moving_after(t, at_kill, watched)
            if moved is None:
                self.problems.append(f"partitions {sorted(watched)} not applied after the kill")
            recovery.append(moved)
        firsts = [first_forecast_after(cov, t) for t in self.faults]
        return {
            "name": self.name,
            "events_in": self.events_in,
            "applied": applied,
            "lost": lost,
            "double": double,
            "dead_letters": letters,
            "windows_closed": cov.windows_closed,
            "windows_without_forecasts": cov.windows_without_forecasts,
            "coalesced": self.monitor.coalesced,
            "recovery_s": max((r for r in recovery if r is not None), default=None),
            "first_forecast_s": max((f for f in firsts if f is not None), default=None),
            "peak_lag": self.monitor.peak_lag,
            **self.extra,
        }

    def cleanup(self) -> None:
        import redis
        from confluent_kafka.admin import AdminClient

        client = redis.Redis.from_url(self.settings.redis_url, **self.settings.redis_kwargs())
        try:
            keys = list(client.scan_iter(match=f"{self.settings.redis_prefix}:*", count=10_000))
            for i in range(0, len(keys), 10_000):
                client.delete(*keys[i : i + 10_000])
        finally:
            client.close()
        AdminClient(self.settings.kafka_client_config()).delete_topics(
            list(self.settings.all_topics())
        )


def _quiet_lag(lag: Callable[[Settings], int], settings: Settings) -> bool:
    try:
        return lag(settings) == 0
    except Exception:  # the broker not answering (yet)
        return False


def _create_topics(settings: Settings) -> None:
    """The scenario's topics, accepting messages up to TOPIC_MAX_MESSAGE_BYTES."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.kafka_client_config())
    config = {"max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES)}
    futures = admin.create_topics(
        [
            NewTopic(t, num_partitions=settings.partitions, replication_factor=1, config=config)
            for t in settings.all_topics()
        ]
    )
    for future in futures.values():
        future.result(30)


def _check(settings: Settings, events: list[tuple[int, Event]]) -> Any:
    """The consistency check of the slice against the scenario's store."""
    import redis

    from streams.history.check import compare, recompute, store_skus
    from streams.store.reader import FeatureReader

    client = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    try:
        layout = layout_of(settings)
        return compare(
            recompute(events), FeatureReader(client, layout), extra_skus=store_skus(client, layout)
        )
    finally:
        client.close()


def _feature_snapshot(settings: Settings) -> dict[bytes, Any]:
    import redis

    client = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    try:
        out: dict[bytes, Any] = {}
        for kind in ("fh", "fd", "s"):
            for key in client.scan_iter(match=f"{settings.redis_prefix}:{kind}:*", count=5000):
                out[key] = client.hgetall(key)
        for key in client.scan_iter(match=f"{settings.redis_prefix}:dy:*", count=5000):
            out[key] = client.get(key)
        return out
    finally:
        client.close()


# --- the scenarios ---------------------------------------------------------------------


def _begin(ctx: ChaosContext, name: str) -> Scenario:
    run = Scenario(ctx, name)
    run.start_forecaster()
    run.start_worker()
    return run


def worker_kill(ctx: ChaosContext) -> Scenario:
    """The stream worker killed with SIGKILL three times at random points of the replay."""
    run = _begin(ctx, "worker-kill")
    n = len(ctx.events)
    replay = PacedReplay(run.settings, ctx.events, parts=24, gap_s=0.6).start()
    run.events_in = n
    for fraction in sorted(ctx.rng.uniform(0.1, 0.85) for _ in range(3)):
        run.wait_applied(int(fraction * n))
        run.kill_worker()
        run.restarted("worker")
        run.start_worker()
        run.wait_new_script()
    replay.wait()
    run.settle(n)
    return run


def redis_rollback(ctx: ChaosContext) -> Scenario:
    """Redis restarted from an older state than the worker had acknowledged (its
    append-only files as they were mid-replay), the worker killed with it."""
    run = _begin(ctx, "redis-rollback")
    n = len(ctx.events)
    replay = PacedReplay(run.settings, ctx.events, parts=16, gap_s=0.5).start()
    run.events_in = n
    run.wait_applied(int(ctx.rng.uniform(0.3, 0.6) * n))
    state = ctx.workdir / "redis-rollback" / "aof-copy"
    ctx.stack.copy_redis_state(state)
    replay.wait()
    run.settle(n)  # every event applied and committed in Kafka
    run.kill_worker()
    ctx.stack.kill_redis()
    ctx.stack.restart_redis(state)
    shutil.rmtree(state, ignore_errors=True)
    behind = n - run.stats().get("events", 0)
    if behind <= 0:
        run.problems.append("the rolled-back Redis lost nothing: the scenario tested nothing")
    run.restarted("worker")
    run.start_worker()
    run.settle(n)
    if run.stats().get("rewound", 0) < behind:
        run.problems.append(
            f"the worker read {run.stats().get('rewound', 0)} records again, "
            f"Redis had lost {behind} events"
        )
    return run


REDIS_DOWN_S = 2.0
"""How long Redis stays down in ``redis-restart`` and ``redis-kill`` before it restarts."""


def _redis_outage(ctx: ChaosContext, name: str, stop: Callable[[], None]) -> Scenario:
    """Redis stopped by ``stop`` mid-replay, down a while, and restarted in place (its own
    data directory and append-only file): the workers must ride it out (retry,
    reconnect) with nothing lost, doubled or unforecast; recovery_s is from the restart to
    the stream worker's next store script."""
    run = _begin(ctx, name)
    n = len(ctx.events)
    worker, forecaster = run.worker, run.forecaster
    assert worker is not None and forecaster is not None
    pids = (worker.pid, forecaster.pid)
    # both consuming before the replay starts, so that the fault lands mid-replay with
    # the forecast worker at work (its start-up, torch's import, takes longer than a
    # small slice's replay)
    for child, what in ((worker, "stream worker"), (forecaster, "forecast worker")):
        run.wait(partial(_log_says, child, "partitions assigned: "), f"the {what}'s partitions")
    replay = PacedReplay(run.settings, ctx.events, parts=16, gap_s=0.6).start()
    run.events_in = n
    run.wait_applied(int(ctx.rng.uniform(0.3, 0.6) * n))
    run.faults.append(datetime.now(UTC))
    applied_before = run.stats().get("events", 0)
    stop()
    if applied_before >= n:
        run.problems.append("Redis went down after the whole slice was applied: nothing tested")
    time.sleep(REDIS_DOWN_S)
    ctx.stack.restart_redis()
    run.restarted("worker")
    applied_after = run.stats().get("events", 0)
    if applied_after < applied_before:
        run.problems.append(
            f"Redis restarted with {applied_after} events applied, "
            f"{applied_before} before it stopped: acknowledged writes lost"
        )
    replay.wait()
    run.settle(n)
    if (run.worker, run.forecaster) != (worker, forecaster) or (worker.pid, forecaster.pid) != pids:
        run.problems.append("a worker was restarted: it did not ride out the Redis outage")
    run.extra = {
        "worker_retries": _log_count(worker, REDIS_RETRY_LOG),
        "forecaster_retries": _log_count(forecaster, REDIS_RETRY_LOG),
    }
    if not run.extra["worker_retries"]:
        run.problems.append("the stream worker never found Redis down: nothing tested")
    return run


REDIS_RETRY_LOG = "redis unavailable ("
"""What both workers log at each try that found Redis down (streams.store)."""


def _log_says(child: ChildProcess, text: str) -> bool:
    return _log_count(child, text) > 0


def _log_count(child: ChildProcess, text: str) -> int:
    if child.log is None or not child.log.exists():
        return 0
    return child.log.read_text(errors="replace").count(text)


def redis_restart(ctx: ChaosContext) -> Scenario:
    """Redis stopped (SIGTERM) mid-replay and restarted on its own append-only file."""
    return _redis_outage(ctx, "redis-restart", ctx.stack.stop_redis)


def redis_kill(ctx: ChaosContext) -> Scenario:
    """Redis killed (SIGKILL) mid-replay and restarted on its own append-only file."""
    return _redis_outage(ctx, "redis-kill", ctx.stack.kill_redis)


def malformed(ctx: ChaosContext) -> Scenario:
    """10,000 malformed messages interleaved with the slice: each one in ``events.dlq``
    with its reason, the worker never restarts, nothing good lost."""
    from streams.chaos.observe import dead_letters as read_dead_letters
    from streams.ingest.processor import DEAD_LETTER_ORIGINAL_BYTES

    run = _begin(ctx, "malformed")
    n = len(ctx.events)
    bad: list[Malformed] = malformed_messages(ctx.events, ctx.malformed, ctx.rng)
    run.faults.append(datetime.now(UTC))
    replay = PacedReplay(run.settings, ctx.events, parts=10, gap_s=0.3, malformed=bad).start()
    run.events_in = n
    replay.wait()
    run.settle(n)
    run.wait(lambda: run.stats().get("dead_letters", 0) >= len(bad), "every dead letter")
    assert run.worker is not None
    worker_pid = run.worker.pid
    _, letters = read_dead_letters(run.settings)
    want = Counter(m.value[:DEAD_LETTER_ORIGINAL_BYTES] for m in bad)
    got = Counter(bytes(dl.original) for dl in letters)
    if got != want:
        missing = sum((want - got).values())
        extra = sum((got - want).values())
        run.problems.append(f"dead letters: {missing} malformed messages missing, {extra} extra")
    if run.worker.pid != worker_pid or not run.worker.alive():
        run.problems.append("the stream worker restarted")
    return run


def replay_twice(ctx: ChaosContext) -> Scenario:
    """The whole slice replayed twice: the features unchanged by the second."""
    run = _begin(ctx, "replay-twice")
    n = len(ctx.events)
    PacedReplay(run.settings, ctx.events, parts=4, gap_s=0.1).start().wait()
    run.settle(n)
    before = _feature_snapshot(run.settings)
    duplicates = run.stats().get("duplicates", 0)
    run.faults.append(datetime.now(UTC))
    PacedReplay(run.settings, ctx.events, parts=4, gap_s=0.1).start().wait()
    run.events_in = 2 * n
    run.wait(
        lambda: run.stats().get("duplicates", 0) >= duplicates + n,
        "the second replay to be recognised as duplicates",
    )
    run.settle(n)
    if _feature_snapshot(run.settings) != before:
        run.problems.append("the second replay changed the features")
    run.faults.clear()  # no new window closes: there is no new forecast to time
    return run


def forecaster_kill(ctx: ChaosContext) -> Scenario:
    """The forecast worker killed with SIGKILL while windows are being forecast."""
    run = _begin(ctx, "forecaster-kill")
    n = len(ctx.events)
    replay = PacedReplay(run.settings, ctx.events, parts=16, gap_s=0.6).start()
    run.events_in = n
    run.wait(
        lambda: run.monitor.samples[-1].forecasts > 0 if run.monitor.samples else False,
        "the first forecasts",
    )
    run.wait_applied(int(0.5 * n))
    run.kill_forecaster()
    run.restarted("forecaster")
    run.start_forecaster()
    replay.wait()
    run.settle(n)
    return run


def broker_restart(ctx: ChaosContext) -> Scenario:
    """The broker stopped (SIGTERM) mid-replay and started again."""
    run = _begin(ctx, "broker-restart")
    n = len(ctx.events)
    replay = PacedReplay(run.settings, ctx.events, parts=16, gap_s=0.6).start()
    run.events_in = n
    run.wait_applied(int(ctx.rng.uniform(0.3, 0.6) * n))
    run.faults.append(datetime.now(UTC))
    ctx.stack.stop_kafka()
    time.sleep(2.0)
    ctx.stack.start_kafka()
    run.restarted("worker")
    replay.wait()
    run.settle(n)
    return run


def worker_join(ctx: ChaosContext) -> Scenario:
    """A second stream worker joins the group mid-replay (a rebalance), applies, and is
    killed with SIGKILL (a rebalance back, once the coordinator gives up on it)."""
    run = _begin(ctx, "worker-join")
    n = len(ctx.events)
    replay = PacedReplay(run.settings, ctx.events, parts=24, gap_s=0.8).start()
    run.events_in = n
    run.wait_applied(int(0.2 * n))
    run.start_second_worker()
    if run.wait(lambda: run.second_assigned() > 0, "the second worker to be given partitions"):
        given = run.stats().get("events", 0)
        run.wait_applied(min(n, given + int(0.2 * n)))  # both apply for a while
    run.extra = {"joined_partitions": run.second_assigned()}
    run.kill_second_worker()
    replay.wait()
    run.settle(n)
    return run


LATE_EVENTS = 300
"""Events of the ``late`` scenario held back from the slice's first tenth (at most a
twentieth of the slice)."""


def late(ctx: ChaosContext) -> Scenario:
    """Events later than the grace period interleaved with the replay: applied, counted in
    ``late``, their windows closed again and forecast again."""
    import orjson

    from streams.chaos.observe import read_topic

    run = _begin(ctx, "late")
    n = len(ctx.events)
    reordered, held = late_interleaved(ctx.events, min(LATE_EVENTS, n // 20), ctx.rng)
    replay = PacedReplay(run.settings, reordered, parts=16, gap_s=0.5).start()
    run.events_in = n
    replay.wait()
    run.settle(n)
    window_ms = run.settings.window_seconds * 1000
    affected: dict[datetime, set[str]] = {}  # window end -> the late events' SKUs
    for t, event in held:
        sku = getattr(event, "sku", None)
        if sku is not None:
            end = datetime.fromtimestamp((t - t % window_ms + window_ms) / 1000, UTC)
            affected.setdefault(end, set()).add(sku)

    by_window: dict[tuple[int, datetime], list[tuple[datetime, set[str]]]] = {}
    for m in read_topic(run.settings, run.settings.topic_windows_closed):
        doc = orjson.loads(m.value())
        key = (doc["partition"], _ts(doc["window"]["end"]))
        by_window.setdefault(key, []).append((_ts(doc["closed_at"]), set(doc["skus"])))
    again: dict[tuple[datetime, str], datetime] = {}  # (end, SKU) -> closed again at
    for (_, end), msgs in by_window.items():
        for at, skus in sorted(msgs, key=lambda x: x[0])[1:]:  # after the window's first
            for sku in skus & affected.get(end, set()):
                again.setdefault((end, sku), at)
    newest: dict[str, list[tuple[datetime, datetime]]] = {}
    for m in read_topic(run.settings, run.settings.topic_forecasts):
        doc = orjson.loads(m.value())
        newest.setdefault(doc["sku"], []).append(
            (_ts(doc["window"]["end"]), _ts(doc["created_at"]))
        )
    republished = [e for e, skus in affected.items() if all((e, s) in again for s in skus)]

    def forecast_again(e: datetime, exact: bool) -> bool:
        """Every late SKU of window ``e`` forecast after its re-close: for ``e`` itself
        (``exact``), or for ``e`` or a newer window (a window coalesced into a newer one)."""
        return all(
            any((w == e if exact else w >= e) and c >= again[(e, s)] for w, c in newest.get(s, []))
            for s in affected[e]
        )

    reforecast = [e for e in republished if forecast_again(e, exact=True)]
    covered = [e for e in republished if forecast_again(e, exact=False)]
    counted = run.stats().get("late", 0)
    run.extra = {
        "late": counted,
        "late_sent": len(held),
        "late_windows": len(affected),
        "late_windows_republished": len(republished),
        "late_windows_reforecast": len(reforecast),
    }
    if counted < len(held):
        run.problems.append(f"{counted} events counted late, {len(held)} sent late")
    if len(republished) < len(affected):
        missing = sorted(set(affected) - set(republished))[:3]
        run.problems.append(
            f"{len(affected) - len(republished)} of {len(affected)} windows with late events "
            f"not closed again, e.g. ending {[m.isoformat() for m in missing]}"
        )
    if len(covered) < len(republished):
        run.problems.append(
            f"{len(republished) - len(covered)} windows closed again but not forecast again "
            "(neither they nor a newer window they could be coalesced into)"
        )
    return run


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


SCENARIOS: dict[str, Callable[[ChaosContext], Scenario]] = {
    "worker-kill": worker_kill,
    "redis-rollback": redis_rollback,
    "malformed": malformed,
    "replay-twice": replay_twice,
    "forecaster-kill": forecaster_kill,
    "broker-restart": broker_restart,
    "redis-restart": redis_restart,
    "redis-kill": redis_kill,
    "worker-join": worker_join,
    "late": late,
}
"""Every scenario, in the order ``demandcast chaos`` runs them."""
