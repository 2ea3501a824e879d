"""``demandcast bench restock``: the decision backtest of the restock and pricing rules.

Mounted by :mod:`demandcast.cli` through :func:`register` (``cli_bench.register(app,
get_settings)``); the work is :mod:`streams.bench.restock`, imported inside the command.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from demandcast.groups import command_group
from demandcast.options import DemoReportDir, JsonFlag, UciLog
from streams.settings import Settings

console = Console(stderr=True)
_get_settings: list[Callable[[], Settings]] = []


def register(app: typer.Typer, get_settings: Callable[[], Settings]) -> None:
    """Add ``bench restock`` to the ``demandcast`` app."""
    _get_settings[:] = [get_settings]
    bench_app = command_group(app, "bench", "Benchmarks: each prints JSON figures.")
    bench_app.command("restock")(bench_restock_cmd)
    bench_app.command("updater")(bench_updater_cmd)


def bench_restock_cmd(
    as_json: JsonFlag = False,
    log: UciLog = None,
    report_dir: DemoReportDir = Path("reports/demo"),
    lead_time: Annotated[
        int, typer.Option("--lead-time", min=1, help="Simulated lead time in days")
    ] = 7,
    review_days: Annotated[
        int | None,
        typer.Option("--review-days", min=0, help="Review period (default: the setting)"),
    ] = None,
    order_cost: Annotated[
        float | None,
        typer.Option(
            "--order-cost",
            min=0.0,
            help="Order cost in unit-days of holding: per-SKU economic order intervals "
            "(default: the setting)",
        ),
    ] = None,
    no_sweep: Annotated[
        bool, typer.Option("--no-sweep", help="Skip the seasonal_naive service-level sweep")
    ] = False,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="Cache of the daily forecasts (default: in --report-dir)"),
    ] = None,
) -> None:
    """Replay the demo's period with SIMULATED stock ordered as each restock policy
    recommends; print service level, fill rate, stock, stock-outs, orders and alerts."""
    import os

    # many small matrix products: BLAS threads only contend on a shared machine (10x slower
    # measured on 2 busy cores); numpy is not imported yet when the command starts
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from demandcast.demo import DemoOptions
    from streams.bench.ingest import DEFAULT_LOG
    from streams.bench.restock import RestockBenchOptions, bench_restock

    settings = _get_settings[0]()
    demo = DemoOptions(log=log or DEFAULT_LOG, report_dir=report_dir)
    model, skus = demo_model(settings, demo)
    opts = RestockBenchOptions(
        log=demo.log,
        split=demo.split,
        lead_time_days=lead_time,
        review_days=review_days,
        order_cost=order_cost,
        sweep=not no_sweep,
        cache=cache or report_dir / "data" / "bench_restock_forecasts.npz",
    )
    report = bench_restock(settings, opts, model, skus)
    if as_json:
        print(json.dumps(report))
        return
    console.print(report["stock"])
    for name, row in report["policies"].items():
        console.print(
            f"{name:>24}: service {row['service_level']:.3f}, fill {row['fill_rate']:.3f}, "
            f"stock {row['avg_on_hand_units']:.1f} u / {row['avg_on_hand_days']:.1f} d, "
            f"stock-out days {row['stockout_days']}, orders {row['orders']}, "
            f"alerts/SKU/month {row['alerts_per_sku_month']:.2f}"
        )
    console.print(f"calibration (share of totals <= quantile): {report['calibration']}")
    console.print(f"targets: {report['targets']}")


def bench_updater_cmd(
    as_json: JsonFlag = False,
    log: UciLog = None,
    report_dir: DemoReportDir = Path("reports/demo"),
    cadence: Annotated[
        int, typer.Option("--cadence-days", min=1, help="Event-time days between decisions")
    ] = 7,
    bad_candidate: Annotated[
        bool,
        typer.Option("--bad-candidate", help="Fine-tune on shuffled targets (must be rejected)"),
    ] = False,
) -> None:
    """Replay the updater's decisions over the demo's period (the log's daily series, not
    through Kafka); print served vs frozen accuracy, triggers, fine-tunes, promotions."""
    from demandcast.demo import DemoOptions
    from models.registry import ModelRegistry
    from streams.bench.ingest import DEFAULT_LOG
    from updater.bench import UpdaterBenchOptions, bench_updater

    settings = _get_settings[0]()
    demo = DemoOptions(log=log or DEFAULT_LOG, report_dir=report_dir)
    frozen, skus = demo_model(settings, demo)
    champion = ModelRegistry(settings.model_registry).load(frozen.version, device="cpu")
    opts = UpdaterBenchOptions(
        log=demo.log, split=demo.split, cadence_days=cadence, bad_candidate=bad_candidate
    )

    def progress(record: dict[str, Any]) -> None:
        console.print(
            f"{record['day']}: {record['outcome']}"
            + (
                f" ({', '.join(record['triggers'])}) {record.get('reason', '')}"
                if record["triggers"]
                else ""
            )
        )

    report = bench_updater(settings, opts, frozen, champion, skus, progress)
    if as_json:
        print(json.dumps(report))
        return
    for key in ("frozen", "served", "served_vs_frozen_wql", "promotions", "fine_tune_s"):
        console.print(f"{key}: {report[key]}")


def demo_model(settings: Settings, demo: Any) -> tuple[Any, list[str]]:
    """The model the demo trains (reused from the registry when one was trained on the same
    table with the same steps, else trained now by the demo's own step, which promotes it)
    and the training table's SKUs."""
    from demandcast.demo import DemoRun, prepare_model
    from models.data import read_long_table
    from models.registry import ModelRegistry
    from streams.serving.model_holder import load_version

    path = demo.report_dir / "data" / f"train_until_{demo.split.date()}_top{demo.top}.csv"
    table = read_long_table(path, "D") if path.exists() else None
    registry = ModelRegistry(settings.model_registry)
    version = None
    if table is not None:
        fingerprint = table.fingerprint()
        for info in reversed(registry.list()):
            meta = registry.metadata(info.version)
            same = meta.get("training_data", {}).get("fingerprint") == fingerprint
            if same and meta.get("demo_steps") == demo.train_steps:
                version = info.version
                break
    if version is None:
        run = DemoRun()
        table = prepare_model(settings, demo, console, run)
        version = run.model_version
    assert table is not None
    return load_version(settings.model_registry, version, "cpu"), list(table.series_ids)
