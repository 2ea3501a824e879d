"""``demandcast demo``: the whole system on the real UCI log, end to end.

1. bring the embedded Kafka + Redis up;
2. train a model on the first months of the log (or reuse the registered version trained
   on exactly the same table) and make it the champion;
3. start the stream worker and the forecast worker as processes of their own;
4. replay the remaining months at full speed, with simulated inventory (the log has none:
   see :mod:`streams.history.simulate`), and show a live summary;
5. write a report directory: a PNG of a few SKUs' actuals against their forecast bands and a
   Markdown summary of throughput, accuracy and alerts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams.settings import Settings
from streams.store.keys import layout_of

if TYPE_CHECKING:
    from models.data import Panel

DAY = timedelta(days=1)


@dataclass(frozen=True)
class DemoOptions:
    log: Path
    report_dir: Path
    split: datetime = datetime(2011, 9, 1, tzinfo=UTC)
    """Train on the log before this instant, replay from it."""
    top: int = 500
    horizon: int = 28
    train_steps: int = 600
    cover_days: float = 14.0
    lead_time_days: float = 7.0
    plot_skus: int = 4
    speed: float = 40_000.0
    """Real-time multiplier of the live replay (40,000x: a day of the log in 2.2 s)."""
    restock_table: bool = True
    """Also run the restock decision backtest (``demandcast bench restock``) for the report."""
    updater: bool = True
    """Run the updater (``demandcast updater``) during the live replay; its decisions make the
    report's timeline."""
    updater_poll_seconds: float = 2.0
    """The demo's updater looks at the watermark this often (wall clock)."""
    updater_finish_seconds: float = 240.0
    """After the replay, wait this long at most for the updater's cycle in progress."""


@dataclass
class LiveRun:
    """What a demo's model and live replay measured (both demos)."""

    model_version: str = ""
    model_reused: bool = False
    train_seconds: float = 0.0
    history_events: int = 0
    history_seconds: float = 0.0
    events: int = 0
    replay_seconds: float = 0.0
    drain_seconds: float = 0.0
    stream_stats: dict[str, int] = field(default_factory=dict)
    forecaster_stats: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0


@dataclass
class DemoRun(LiveRun):
    """What the demo measured, for the report."""

    inventory_events: int = 0
    restock_policies: dict[str, dict[str, float]] = field(default_factory=dict)
    """``demandcast bench restock``'s ``policies`` on the replayed period (simulated stock)."""
    log_end: str = ""
    """The day after the replayed log's last order (ISO date): where the actuals end."""
    started_at: str = ""
    """When the run began (UTC, ISO): the updater's decisions since are this run's."""
    updater_decisions: list[dict[str, Any]] = field(default_factory=list)
    """The updater's audit records of this run (``demandcast model history``)."""
    served_versions: dict[str, int] = field(default_factory=dict)
    """Forecasts published per model version (on ``forecasts``)."""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "demandcast", *args]


# --- model ---------------------------------------------------------------------------------


def train_and_promote(
    settings: Settings, table: Path, horizon: int, steps: int, known: tuple[str, ...] = ()
) -> float:
    """``demandcast train`` on a daily ``table`` (``known``: its known-future columns),
    promoting the new version; return the seconds it took."""
    t0 = time.monotonic()
    args = ["--data", str(table), "--freq", "D", "--horizon", str(horizon), "--steps", str(steps)]
    if known:
        args += ["--known", ",".join(known)]
    subprocess.run(_cli("train", *args, "--promote"), env=settings.as_env(), check=True)
    return time.monotonic() - t0


def prepare_model(settings: Settings, opts: DemoOptions, console: Console, run: DemoRun) -> Panel:
    """Train on the log before ``opts.split`` unless that exact table was trained on before;
    return the training table."""
    from models.data import read_long_table, read_uci_log, uci_to_long, write_long_table
    from models.exceptions import RegistryError
    from models.registry import ModelRegistry

    work = opts.report_dir / "data"
    work.mkdir(parents=True, exist_ok=True)
    table_path = work / f"train_until_{opts.split.date()}_top{opts.top}.csv"
    if not table_path.exists():
        with console.status("building the training table from the real log ..."):
            lines = read_uci_log(opts.log)
            cut = lines[lines["InvoiceDate"] < opts.split.replace(tzinfo=None)]
            write_long_table(uci_to_long(cut, "D", opts.top), table_path)
    table = read_long_table(table_path, "D")
    fingerprint = table.fingerprint()
    registry = ModelRegistry(settings.model_registry)
    for info in reversed(registry.list()):
        meta = registry.metadata(info.version)
        data = meta.get("training_data", {})
        if data.get("fingerprint") == fingerprint and meta.get("demo_steps") == opts.train_steps:
            registry.promote(info.version)
            run.model_version, run.model_reused = info.version, True
            console.print(f"reusing model {info.version} (trained on the same table)")
            return table
    console.print(f"training on {table_path.name} (first months of the log, top {opts.top} SKUs)")
    run.train_seconds = train_and_promote(settings, table_path, opts.horizon, opts.train_steps)
    version = registry.champion()
    if version is None:  # pragma: no cover - train --promote always sets one
        raise RegistryError("training registered no champion; see `demandcast model list`")
    from models.registry import METADATA, atomic_write_json

    meta = registry.metadata(version)
    meta["demo_steps"] = opts.train_steps
    atomic_write_json(registry.path(version) / METADATA, meta)
    run.model_version = version
    return table


# --- events --------------------------------------------------------------------------------


def demo_events(
    opts: DemoOptions, train_table: Panel
) -> tuple[list[tuple[int, Any]], list[tuple[int, Any]], int]:
    """The orders before the split (the history), and the orders after it plus simulated
    inventory for the top SKUs (the live replay); and the number of inventory events."""
    from schemas import OrderEvent
    from streams.history.replay import load_events
    from streams.history.simulate import InventoryPolicy, simulate_inventory
    from streams.store.keys import epoch_ms

    loaded = load_events(opts.log, "uci")
    split_ms = epoch_ms(opts.split)
    history = [(t, e) for t, e in loaded.events if t < split_ms]
    live = [(t, e) for t, e in loaded.events if t >= split_ms]
    last_8_weeks = train_table.target[:, -56:]
    demand = {sku: float(last_8_weeks[i].mean()) for i, sku in enumerate(train_table.series_ids)}
    policy = InventoryPolicy(cover_days=opts.cover_days, lead_time_days=opts.lead_time_days)
    orders = [(t, e) for t, e in live if isinstance(e, OrderEvent)]
    inventory = simulate_inventory(orders, demand, policy, split_ms)
    events: list[tuple[int, Any]] = sorted([*live, *inventory], key=lambda p: p[0])
    return history, events, len(inventory)


def day_after_last_order(events: list[tuple[int, Any]], default: datetime) -> datetime:
    """Midnight UTC after the day of the last order in ``events`` (``default`` without one)."""
    from schemas import OrderEvent

    last = max((t for t, e in events if isinstance(e, OrderEvent)), default=None)
    if last is None:
        return default
    when = datetime.fromtimestamp(last / 1000, tz=UTC)
    return when.replace(hour=0, minute=0, second=0, microsecond=0) + DAY


# --- processes and the live view -------------------------------------------------------------


def _stats(client: Any, key: str, previous: dict[str, str]) -> dict[str, str]:
    """A stats hash; the previous reading while Redis is busy (a long script runs)."""
    import redis

    try:
        return {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
    except (redis.ResponseError, redis.TimeoutError):
        return previous


def _summary(
    produced: int, total: int, rate: float, stream: dict[str, str], fc: dict[str, str], base: int
) -> Table:
    table = Table(title="demandcast demo (live)", show_header=False)
    processed = sum(int(stream.get(k, 0)) for k in ("events", "duplicates", "dead_letters")) - base
    rows = [
        ("events replayed", f"{produced:,} / {total:,}  ({rate:,.0f}/s)"),
        ("events in the feature store", f"{int(stream.get('events', 0)):,}"),
        ("lag (replayed, not yet in Redis)", f"{max(0, produced - processed):,}"),
        ("late / dead letters", f"{stream.get('late', 0)} / {stream.get('dead_letters', 0)}"),
        ("windows closed", f"{int(stream.get('windows_closed', 0)):,}"),
        ("windows forecast / coalesced", f"{fc.get('windows', 0)} / {fc.get('coalesced', 0)}"),
        ("forecasts published", f"{int(float(fc.get('forecasts', 0))):,}"),
        (
            "restock / pricing alerts",
            f"{fc.get('restock_alerts', 0)} / {fc.get('pricing_alerts', 0)}",
        ),
        ("forecast latency (last window)", f"{float(fc.get('last_latency_s', 0)):.2f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def run_demo(settings: Settings, opts: DemoOptions, console: Console) -> DemoRun:
    """Run the demo end to end; return what it measured (the report is written too)."""
    import redis

    from streams.kafka.admin import ensure_topics
    from streams.stack.embedded import EmbeddedStack

    t_start = time.monotonic()
    run = DemoRun(started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    with console.status("bringing the embedded Kafka + Redis up ..."):
        EmbeddedStack(settings).up()
    # a fresh namespace per run, so a rerun starts from empty features and offsets; windows
    # of the history backfill are not forecast
    settings = settings.namespaced(f"demo{datetime.now(UTC):%Y%m%d%H%M%S}").model_copy(
        update={"forecast_after": opts.split}
    )
    table = prepare_model(settings, opts, console, run)
    with console.status("loading the log and simulating inventory ..."):
        history, events, run.inventory_events = demo_events(opts, table)
    run.log_end = day_after_last_order(events, opts.split).isoformat()
    run.history_events, run.events = len(history), len(events)
    ensure_topics(settings, settings.all_topics())
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    logs = opts.report_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    updater = None
    if opts.updater:
        updater = (
            partial(start_updater, settings, opts, logs / "updater.log"),
            partial(finish_updater_cycle, settings, opts.updater_finish_seconds, console),
        )
    replay_through_workers(
        settings,
        history,
        events,
        opts=opts,
        run=run,
        client=client,
        console=console,
        logs=logs,
        updater=updater,
    )
    if opts.updater:
        from updater.audit import AuditLog

        run.updater_decisions = [
            r
            for r in AuditLog(settings.model_registry).records()
            if str(r.get("decided_at", "")) >= run.started_at
        ]
    if opts.restock_table:
        run.restock_policies = restock_decisions(settings, opts, run.model_version, table, console)
    from demandcast.demo_report import write_report  # it imports this module

    write_report(settings, opts, run, client, console)
    client.close()
    run.wall_seconds = time.monotonic() - t_start
    (opts.report_dir / "run.json").write_text(json.dumps(run.__dict__, indent=2, default=str))
    return run


def replay_through_workers(
    settings: Settings,
    history: list[tuple[int, Any]],
    live: list[tuple[int, Any]],
    *,
    opts: Any,
    run: LiveRun,
    client: Any,
    console: Console,
    logs: Path,
    updater: tuple[Callable[[], Any], Callable[[], None]] | None = None,
) -> None:
    """The live part of a demo: the stream worker backfills the ``history`` events (not
    forecast), then the forecast worker (and ``updater``'s start, if given) joins and the
    ``live`` events replay at ``opts.speed`` (``opts.split``: where they start); after them
    ``updater``'s finish runs, and the workers' statistics go into ``run``."""
    from streams.stack.processes import ChildProcess

    procs = [ChildProcess.demandcast(settings, "worker", log=logs / "worker.log")]
    try:
        console.print(
            f"backfilling the feature store with {len(history):,} events before "
            f"{opts.split.date()} (the model's context) ..."
        )
        run.history_seconds = _replay_live(settings, history, None, procs, client, console)[0]
        procs.append(ChildProcess.demandcast(settings, "forecaster", log=logs / "forecaster.log"))
        if updater is not None:
            procs.append(updater[0]())
        console.print(
            f"replaying {len(live):,} events from {opts.split.date()} at "
            f"{opts.speed:,.0f}x real time through the live workers ..."
        )
        run.replay_seconds, run.drain_seconds = _replay_live(
            settings, live, opts.speed, procs, client, console
        )
        if updater is not None:
            updater[1]()
        run.stream_stats = {
            k: int(v) for k, v in _stats(client, layout_of(settings).stats, {}).items()
        }
        run.forecaster_stats = _stats(client, layout_of(settings).forecaster_stats, {})
    finally:
        for proc in procs:
            proc.stop()


def finish_updater_cycle(settings: Settings, timeout_s: float, console: Console) -> None:
    """Wait (at most ``timeout_s``) until no updater holds the registry's decision lock: its
    cycle in progress, started on the last event time, ends with a decision."""
    from updater.audit import DecisionLock
    from updater.exceptions import UpdaterBusyError

    def busy() -> bool:
        try:
            with DecisionLock(settings.model_registry):
                return False
        except UpdaterBusyError:
            return True

    deadline = time.monotonic() + timeout_s
    if busy():
        with console.status("waiting for the updater's decision on the last event time ..."):
            while busy() and time.monotonic() < deadline:
                time.sleep(1.0)


def start_updater(settings: Settings, opts: DemoOptions, log: Path) -> Any:
    """``demandcast updater`` for the live replay, from a clean shadow (a run before may
    have left a challenger or a probation: this run's champion is the demo's model)."""
    from models.shadow import ShadowPointer
    from streams.stack.processes import ChildProcess

    ShadowPointer(settings.model_registry).clear()
    return ChildProcess.demandcast(
        settings.model_copy(update={"updater_poll_seconds": opts.updater_poll_seconds}),
        "updater",
        log=log,
    )


def restock_decisions(
    settings: Settings, opts: DemoOptions, version: str, table: Panel, console: Console
) -> dict[str, dict[str, float]]:
    """The restock policies replayed over the demo's period with simulated stock ordered as
    each recommends (:func:`streams.bench.restock.bench_restock`, without its sweep)."""
    from streams.bench.restock import RestockBenchOptions, bench_restock
    from streams.serving.model_holder import load_version

    bench = RestockBenchOptions(
        log=opts.log,
        split=opts.split,
        lead_time_days=round(opts.lead_time_days),
        cover_days=opts.cover_days,
        cache=opts.report_dir / "data" / "bench_restock_forecasts.npz",
        sweep=False,
    )
    with console.status("replaying the restock policies on simulated stock ..."):
        model = load_version(settings.model_registry, version, "cpu")
        report = bench_restock(settings, bench, model, list(table.series_ids))
    return dict(report["policies"])


def _replay_live(
    settings: Settings,
    events: list[tuple[int, Any]],
    speed: float | None,
    procs: list[Any],
    client: Any,
    console: Console,
) -> tuple[float, float]:
    """Produce ``events`` (paced by ``speed``) while showing the live summary; return when
    the stream worker has them all and the forecast worker (if running) has caught up:
    (replay seconds, drain seconds)."""
    from streams.history.replay import produce_events
    from streams.serving.lag import forecaster_lag

    before = _stats(client, layout_of(settings).stats, {})
    base = sum(int(before.get(k, 0)) for k in ("events", "duplicates", "dead_letters"))
    forecasting = len(procs) > 1
    produced = [0]
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            produce_events(
                settings, events, speed=speed, on_progress=lambda n: produced.__setitem__(0, n)
            )
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    t0 = time.monotonic()
    replay_seconds = 0.0
    producer = threading.Thread(target=produce, name="replay", daemon=True)
    producer.start()
    stream: dict[str, str] = {}
    fc: dict[str, str] = {}
    settled_since: float | None = None
    with Live(console=console, refresh_per_second=2) as live:
        while True:
            for proc in procs:
                proc.check()
            if failure:
                raise failure[0]
            stream = _stats(client, layout_of(settings).stats, stream)
            fc = _stats(client, layout_of(settings).forecaster_stats, fc)
            if producer.is_alive():
                replay_seconds = time.monotonic() - t0
            rate = produced[0] / replay_seconds if replay_seconds else 0.0
            live.update(_summary(produced[0], len(events), rate, stream, fc, base))
            processed = sum(int(stream.get(k, 0)) for k in ("events", "duplicates", "dead_letters"))
            done = not producer.is_alive() and processed - base >= len(events)
            if done and (not forecasting or forecaster_lag(settings) == 0):
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since > 3:
                    break
            else:
                settled_since = None
            time.sleep(0.5)
    return replay_seconds, time.monotonic() - t0 - replay_seconds


# --- the report -----------------------------------------------------------------------------
