"""``demandcast updater`` (the process), ``demandcast updater once`` (one decision cycle, for
cron and tests) and ``demandcast model history`` (the updater's decision log).

:func:`register` adds them to the main typer app, after ``demandcast.cli_models`` (whose
``model`` group ``history`` joins). torch and the updater are imported inside the command
bodies so that ``demandcast --help`` stays fast.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from demandcast.errors import ExitCode, describe, exit_code_of
from demandcast.groups import command_group
from schemas import DemandcastError

console = Console(stderr=True)

TRIGGER_KINDS = ("schedule", "promotion", "holiday", "drift")


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {describe(exc)}", err=True)
    return typer.Exit(exit_code_of(exc))


def _summary(decision: Any) -> str:
    kinds = ",".join(t.kind for t in decision.triggers) or "-"
    line = f"{decision.outcome}: trigger {kinds}; {decision.reason}"
    figs = decision.figures
    if "candidate" in figs:
        line += (
            f" (WQL {figs['candidate']['wql']:.4f} vs {figs['champion']['wql']:.4f}, "
            f"MASE {figs['candidate']['mase']:.4f} vs {figs['champion']['mase']:.4f})"
        )
    return line


_get_settings: list[Callable[[], Any]] = []
"""The CLI's settings getter, set by :func:`register`."""


def register(app: typer.Typer, get_settings: Callable[[], Any]) -> None:
    """Add ``updater`` (with ``once``) and ``model history`` to ``app``."""
    updater_app = typer.Typer(
        help="The updater: fine-tunes the champion when a trigger fires, promotes a better one.",
        invoke_without_command=True,
    )
    app.add_typer(updater_app, name="updater")
    model_app = command_group(app, "model", "The model registry: versions and the champion.")

    @updater_app.callback()
    def updater_loop(
        ctx: typer.Context,
        loglevel: Annotated[str, typer.Option("--loglevel", help="Python log level")] = "info",
    ) -> None:
        """Run the updater: every DEMANDCAST_UPDATER_POLL_SECONDS, a decision cycle when the
        watermark advanced."""
        if ctx.invoked_subcommand is not None:
            return
        from streams.observability.logs import configure_logging
        from updater.cycle import run_forever

        settings = get_settings()
        configure_logging(settings, "updater", loglevel)  # text or JSON, secrets redacted
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        console.print(
            f"updater: registry {settings.model_registry}, watermark of "
            f"{settings.topic_orders} every {settings.updater_poll_seconds:g}s"
        )
        try:
            run_forever(settings, stop, lambda d: console.print(_summary(d)))
        except KeyboardInterrupt:
            pass
        except DemandcastError as exc:
            raise _fail(exc) from None

    _get_settings[:] = [get_settings]
    updater_app.command("once")(updater_once)
    model_app.command("history")(model_history)


def _settings() -> Any:
    return _get_settings[0]()


def updater_once(
    force: Annotated[
        str | None,
        typer.Option("--force", help=f"Decide as if this trigger fired: {TRIGGER_KINDS}"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON")] = False,
) -> None:
    """One decision cycle: triggers, fine-tune, shadow evaluation, promote or reject.
    Exits 1 when the cycle failed (the reason is in `demandcast model history`)."""
    from models.exceptions import InputError
    from updater.cycle import CycleOptions, run_once

    if force is not None and force not in TRIGGER_KINDS:
        raise _fail(InputError(f"--force {force!r}: use one of {list(TRIGGER_KINDS)}"))
    try:
        decision = run_once(_settings(), CycleOptions(force=force))
    except DemandcastError as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(decision.record(), default=str))
    else:
        console.print(_summary(decision))
    if decision.outcome == "failed":
        raise typer.Exit(ExitCode.CHECK_FAILED)


def model_history(
    registry: Annotated[
        Path | None,
        typer.Option("--registry", help="Model registry directory (default: settings)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """List every decision of the updater (oldest first): promoted, rejected, failed."""
    from updater.audit import AuditLog

    root = Path(registry) if registry is not None else Path(_settings().model_registry)
    try:
        records = AuditLog(root).records()
    except DemandcastError as exc:
        raise _fail(exc) from None
    if not records:
        console.print(f"no updater decisions in {root}")
    for r in records:
        if as_json:
            print(json.dumps(r, sort_keys=True))
            continue
        kinds = ",".join(t.get("kind", "?") for t in r.get("triggers", [])) or "-"
        version = r.get("candidate") or "-"
        data = r.get("data") or {}
        print(
            f"{r.get('decided_at')}  {r.get('outcome', '?'):<8}  champion "
            f"{r.get('champion') or '-'} -> {version}  trigger {kinds}  data "
            f"{data.get('start', '?')}..{data.get('end', '?')}  {r.get('reason', '')}"
        )
