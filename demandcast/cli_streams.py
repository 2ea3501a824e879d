"""The streaming commands: ``worker``, ``replay``, ``check features``, ``bench ingest``.

Mounted by :mod:`demandcast.cli` through :func:`register`. Faust, confluent-kafka and
pandas are imported inside the command bodies so ``demandcast --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from demandcast.groups import command_group
from streams.settings import Settings

console = Console(stderr=True)
FORMAT_HELP = (
    "Log format: uci, jsonl, rees46, retailrocket or completejourney (its FILE: the word "
    "'package' or a directory of exported Complete Journey files)"
)


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    from schemas import parse_event_time

    try:
        return parse_event_time(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{exc} (e.g. 2011-01-01 or 2011-01-01T08:00:00Z)", param_hint=option
        ) from None


def _parse_speed(value: str) -> float | None:
    if value.strip().lower() == "max":
        return None
    try:
        speed = float(value.rstrip("xX"))
    except ValueError:
        raise typer.BadParameter(
            "use 'max' or a real-time multiplier such as 60", param_hint="--speed"
        ) from None
    if speed <= 0:
        raise typer.BadParameter("must be positive", param_hint="--speed")
    return speed


_get_settings: list[Callable[[], Settings]] = []
"""The CLI's settings getter, set by :func:`register`."""


def register(app: typer.Typer, get_settings: Callable[[], Settings]) -> None:
    """Add the streaming commands to the ``demandcast`` app."""
    check_app = command_group(app, "check", "Consistency checks of the feature store.")
    bench_app = command_group(app, "bench", "Benchmarks: each prints JSON figures.")
    _get_settings[:] = [get_settings]
    app.command("worker")(worker_cmd)
    app.command("replay")(replay_cmd)
    check_app.command("features")(check_features_cmd)
    bench_app.command("ingest")(bench_ingest_cmd)


def _settings() -> Settings:
    return _get_settings[0]()


def worker_cmd(
    loglevel: Annotated[str, typer.Option("--loglevel", help="Faust log level")] = "warning",
) -> None:
    """Run the stream worker: the four ingest agents, until Ctrl-C / SIGTERM."""
    from streams.ingest.app import run_worker

    run_worker(_settings(), loglevel=loglevel)


def replay_cmd(
    file: Annotated[Path, typer.Argument(help="The log (.csv, .jsonl; .gz accepted)")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)] = "uci",
    speed: Annotated[
        str,
        typer.Option(
            "--speed", help="'max', or a real-time multiplier (60 = an hour of log per minute)"
        ),
    ] = "max",
    from_: Annotated[str | None, typer.Option("--from", help="First event time kept")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Events before this time only")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=0, help="At most this many events")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Produce a historical log to Kafka in event-time order, keyed by SKU."""
    from streams.history.replay import replay

    summary = replay(
        _settings(),
        file,
        fmt,
        speed=_parse_speed(speed),
        start=_parse_time(from_, "--from"),
        end=_parse_time(to, "--to"),
        limit=limit,
        progress=not as_json and sys.stderr.isatty(),
    )
    if as_json:
        print(json.dumps(summary.as_dict()))
        return
    table = Table("", "count", title=f"replay of {file.name}")
    table.add_row("rows read", f"{summary.rows_read:,}")
    table.add_row("events produced", f"{summary.events_produced:,}")
    for topic, n in sorted(summary.by_topic.items()):
        table.add_row(f"  to {topic}", f"{n:,}")
    table.add_row("rows rejected", f"{summary.rows_rejected:,}")
    for reason, n in summary.rejected.items():
        table.add_row(f"  {reason}", f"{n:,}")
    table.add_row("outside --from/--to", f"{summary.out_of_range:,}")
    table.add_row("beyond --limit", f"{summary.over_limit:,}")
    rate = summary.events_produced / summary.seconds if summary.seconds else 0.0
    table.add_row("seconds", f"{summary.seconds:.1f} ({rate:,.0f} events/s)")
    Console().print(table)


def check_features_cmd(
    log: Annotated[Path, typer.Option("--log", help="The raw log that was replayed")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)] = "uci",
    from_: Annotated[str | None, typer.Option("--from", help="Same as the replay")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Same as the replay")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=0, help="Same as the replay")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Recompute the log's features linearly (pandas) and compare with Redis.

    Exits 1 when any bucket is lost, double-counted or different.
    """
    from streams.history.check import check_log

    result = check_log(
        _settings(),
        log,
        fmt,
        start=_parse_time(from_, "--from"),
        end=_parse_time(to, "--to"),
        limit=limit,
    )
    if as_json:
        print(json.dumps(result.as_dict()))
    else:
        table = Table(
            "freq",
            "matching",
            "lost",
            "double-counted",
            "mismatched",
            title=f"features of {log.name} vs Redis ({result.skus:,} SKUs)",
        )
        for freq, c in result.by_freq.items():
            table.add_row(
                freq,
                f"{c['matching']:,}",
                f"{c['lost']:,}",
                f"{c['double_counted']:,}",
                f"{c['mismatched']:,}",
            )
        Console().print(table)
        for example in result.examples:
            console.print(example)
    if not result.ok:
        raise typer.Exit(1)


def bench_ingest_cmd(
    events: Annotated[
        int, typer.Option("--events", "-n", min=1, help="Events taken from the UCI log")
    ] = 200_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    log: Annotated[
        Path | None,
        typer.Option("--log", help="UCI log (default: ../shared/data/online_retail)"),
    ] = None,
) -> None:
    """Measure ingest: N UCI events through one stream worker from an empty state."""
    from streams.bench.ingest import bench_ingest

    report = bench_ingest(_settings(), events, log=log, quiet=as_json)
    if as_json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            console.print(f"{key:>20}: {value}")
    if report.get("lost") or report.get("duplicated"):
        raise typer.Exit(1)
