"""``demandcast chaos [SCENARIO...] --json``: fault injection with figures (issue 17).

Mounted by :mod:`demandcast.cli` through :func:`register` (``cli_chaos.register(app,
get_settings)``); the work is :mod:`streams.chaos.runner`, imported inside the command.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from demandcast.options import JsonFlag, UciLog
from streams.settings import Settings

console = Console(stderr=True)
_get_settings: list[Callable[[], Settings]] = []
SCENARIO_NAMES = (
    "worker-kill",
    "redis-rollback",
    "malformed",
    "replay-twice",
    "forecaster-kill",
    "broker-restart",
    "redis-restart",
    "redis-kill",
    "worker-join",
    "late",
)
"""The scenarios, in the order they run (``streams.chaos.scenarios.SCENARIOS``)."""
SOAK = "soak"
"""``demandcast chaos soak --minutes N``: the soak instead of the scenarios
(``streams.chaos.soak``)."""


def register(app: typer.Typer, get_settings: Callable[[], Settings]) -> None:
    """Add ``chaos`` to the ``demandcast`` app."""
    _get_settings[:] = [get_settings]
    app.command("chaos")(chaos_cmd)


def _parse_ports(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.split(",")]
    if len(parts) != 3:
        raise typer.BadParameter("--ports takes KAFKA,CONTROLLER,REDIS")
    return parts[0], parts[1], parts[2]


def chaos_cmd(
    scenarios: Annotated[
        list[str] | None,
        typer.Argument(
            help="Scenarios to run (default: all, in this order): "
            + ", ".join(SCENARIO_NAMES)
            + "; or `soak` alone: the slice looped with shifted event time for --minutes, "
            "memory growth per hour",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
    log: UciLog = None,
    events: Annotated[
        int, typer.Option("--events", min=1000, help="Events of the log's slice replayed")
    ] = 30_000,
    malformed: Annotated[
        int, typer.Option("--malformed", min=10, help="Malformed messages (scenario malformed)")
    ] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random fault points")] = 17,
    ports: Annotated[
        str,
        typer.Option("--ports", help="KAFKA,CONTROLLER,REDIS ports of the chaos stack"),
    ] = "19092,19093,16379",
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Where the chaos stack and the logs go (default: temp)"),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the workdir (logs) afterwards")
    ] = False,
    minutes: Annotated[
        float, typer.Option("--minutes", min=0.1, help="soak: how long to loop the slice")
    ] = 10.0,
    sample_every: Annotated[
        float,
        typer.Option("--sample-every", min=0.5, help="soak: seconds between memory samples"),
    ] = 5.0,
    check: Annotated[
        bool,
        typer.Option("--check/--no-check", help="soak: the consistency check after each loop"),
    ] = True,
) -> None:
    """Replay a slice of the real log through real worker processes on a stack of its own
    (own ports and data directory), inject each scenario's fault and check the features
    afterwards; exit 1 when anything was lost or counted twice, or another check failed."""
    from streams.bench.ingest import DEFAULT_LOG
    from streams.chaos.runner import ChaosOptions, run_chaos

    names = list(scenarios or [])
    if SOAK in names:
        if names != [SOAK]:
            raise typer.BadParameter("soak runs alone: `demandcast chaos soak --minutes N`")
        _soak(
            log or DEFAULT_LOG, events, minutes, sample_every, check, ports, workdir, keep, as_json
        )
        return
    unknown = [n for n in names if n not in SCENARIO_NAMES]
    if unknown:
        raise typer.BadParameter(f"unknown scenario(s) {unknown}; choose from {SCENARIO_NAMES}")
    opts = ChaosOptions(
        log=log or DEFAULT_LOG,
        events=events,
        malformed=malformed,
        seed=seed,
        ports=_parse_ports(ports),
        workdir=workdir,
        keep=keep or workdir is not None,
    )

    def progress(result: dict[str, Any], problems: list[str]) -> None:
        status = "[green]ok[/green]" if not problems else "[red]FAILED[/red]"
        console.print(f"chaos {result['name']}: {status} {json.dumps(result)}")
        for line in problems:
            console.print(f"  [red]{result['name']}:[/red] {line}")

    report = run_chaos(_get_settings[0](), names, opts, on_scenario=progress)
    if as_json:
        print(json.dumps(report))
    else:
        for result in report["scenarios"]:
            console.print(result)
    if not report["ok"]:
        failed = ", ".join(report["problems"])
        console.print(f"[red]chaos: problems in {failed}[/red]")
        sys.exit(1)


def _soak(
    log: Path,
    events: int,
    minutes: float,
    sample_every: float,
    check: bool,
    ports: str,
    workdir: Path | None,
    keep: bool,
    as_json: bool,
) -> None:
    from streams.chaos.soak import SoakOptions, run_soak

    opts = SoakOptions(
        log=log,
        minutes=minutes,
        events=events,
        sample_s=sample_every,
        check=check,
        ports=_parse_ports(ports),
        workdir=workdir,
        keep=keep or workdir is not None,
    )

    def progress(row: dict[str, Any]) -> None:
        console.print(f"soak loop {row['loop']}: {json.dumps(row)}")

    report = run_soak(_get_settings[0](), opts, on_loop=progress)
    if as_json:
        print(json.dumps(report))
    else:
        console.print(report)
    if not report["ok"]:
        console.print(f"[red]soak: problems: {report['problems']}[/red]")
        sys.exit(1)
