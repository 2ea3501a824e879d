"""``demandcast`` commands of the models part: dataset, train, backtest, model, bench.

:func:`register` adds them to the main typer app. torch, pandas and the models package are
imported inside the command bodies so that ``demandcast --help`` stays fast.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer
from rich.console import Console

from demandcast.errors import describe, exit_code_of
from demandcast.groups import command_group
from schemas import DemandcastError

console = Console(stderr=True)

FreqOpt = Annotated[str, typer.Option("--freq", help="Period of the table: D, W or H")]
DataOpt = Annotated[
    Path, typer.Option("--data", help="Long table CSV: series_id,timestamp,target,...")
]
HorizonOpt = Annotated[int, typer.Option("--horizon", min=1, help="Periods to forecast")]
KnownOpt = Annotated[
    str | None, typer.Option("--known", help="Comma-separated known-future covariate columns")
]
StaticOpt = Annotated[
    str | None, typer.Option("--static", help="Comma-separated static feature columns")
]
RegistryOpt = Annotated[
    Path | None, typer.Option("--registry", help="Model registry directory (default: settings)")
]
StepsOpt = Annotated[int, typer.Option("--steps", min=1, help="Training steps")]
ContextOpt = Annotated[
    int | None, typer.Option("--context", help="Context length (default: 16 seasons of D, else 4H)")
]
BackboneOpt = Annotated[str, typer.Option("--backbone", help="patch (default) or gpt2")]
Gpt2PathOpt = Annotated[
    Path | None, typer.Option("--gpt2-path", help="Local GPT-2 weights for --backbone gpt2")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (reproducible on CPU)")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="torch CPU threads (0: torch default)")]
CalibrateOpt = Annotated[
    bool,
    typer.Option(
        "--calibrate/--no-calibrate",
        help="Calibrate the quantile levels on the validation windows (models/calibration.py)",
    ),
]


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {describe(exc)}", err=True)  # plain: paths must not be wrapped
    return typer.Exit(exit_code_of(exc))


def _split(cols: str | None) -> list[str]:
    return [c.strip() for c in cols.split(",") if c.strip()] if cols else []


def _default_context(freq: str, horizon: int, patch: int) -> int:
    base = {"D": 112, "W": 52, "H": 168}.get(freq.upper(), 4 * horizon)
    base = max(base, 2 * horizon)
    return int(-(-base // patch) * patch)


def _patch_for(freq: str) -> int:
    return {"D": 14, "W": 4, "H": 24}.get(freq.upper(), 4)


class ModelOptions(NamedTuple):
    """The model options ``train`` and ``backtest`` share."""

    steps: int
    context: int | None
    backbone: str
    gpt2_path: Path | None
    seed: int
    threads: int
    calibrate: bool = False


def _build_forecaster(
    settings: Any, freq: str, horizon: int, known: list[str], static: list[str], opts: ModelOptions
) -> Any:
    from models.config import DemandcastConfig
    from models.pipeline import TrainingConfig, TransformerForecaster

    steps, context, backbone, gpt2_path, seed, threads, calibrate = opts
    patch = _patch_for(freq)
    ctx = context or _default_context(freq, horizon, patch)
    extra: dict[str, Any] = {}
    if backbone == "gpt2" and gpt2_path is not None:
        from transformers import GPT2Config

        g = GPT2Config.from_pretrained(str(gpt2_path))
        extra = {
            "d_model": g.n_embd,
            "num_heads": g.n_head,
            "ffn_dim": g.n_inner or 4 * g.n_embd,
            "num_layers": g.n_layer,
        }
    config = DemandcastConfig(
        context_length=ctx,
        prediction_length=horizon,
        patch_length=patch,
        backbone=backbone,
        gpt2_path=str(gpt2_path) if gpt2_path else None,
        holiday_country=getattr(settings, "holiday_country", None) or None,
        season_length={"D": 7, "W": 52, "H": 24}.get(freq.upper(), 1),
        **extra,
    )
    training = TrainingConfig(steps=steps, seed=seed, num_threads=threads, calibrate=calibrate)
    return TransformerForecaster(
        config, training, device=getattr(settings, "device", "auto"), known=known, static=static
    )


def _progress_fit(forecaster: Any, panel: Any, horizon: int, label: str) -> float:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[loss]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(label, total=forecaster.training.steps, loss="")

        def progress(step: int, total: int, train_loss: float, val_loss: float | None) -> None:
            if step % 10 == 0 or step == total:
                shown = f"train {train_loss:.4f}" + (
                    f" val {val_loss:.4f}" if val_loss is not None else ""
                )
                bar.update(task, completed=step, loss=shown)

        t0 = time.perf_counter()
        forecaster.fit(panel, horizon, progress)
        return time.perf_counter() - t0


def _plot_backtest(result: Any, panel: Any, path: str, method: str, num_series: int = 4) -> str:
    """Draw the last window of a few series with ``method``'s 10–90% band and median."""
    import matplotlib
    import numpy as np

    from models.exceptions import InputError

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wins = result.forecasts.get(method)
    if not wins:
        raise InputError(f"no forecasts of {method!r} to plot")
    w = wins[-1]
    order = np.argsort(-np.nansum(w.actual, axis=1))[:num_series]
    fig, axes = plt.subplots(len(order), 1, figsize=(10, 2.6 * len(order)), squeeze=False)
    h = w.actual.shape[1]
    for ax, k in zip(axes[:, 0], order, strict=False):
        row = int(w.series[k])
        ctx = max(w.origin - 4 * h, 0)
        ax.plot(
            panel.index[ctx : w.origin + h],
            panel.target[row, ctx : w.origin + h],
            color="black",
            lw=1,
            label="actual",
        )
        idx = panel.index[w.origin : w.origin + h]
        q = w.quantiles[k]
        ax.fill_between(idx, q[:, 0], q[:, -1], alpha=0.3, label="quantile band")
        ax.plot(idx, q[:, q.shape[1] // 2], color="C1", label="median")
        ax.set_title(f"{panel.series_ids[row]} — {method}")
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


dataset_app = typer.Typer(help="Build training tables from order logs.", no_args_is_help=True)
model_app = typer.Typer(help="The model registry: versions and the champion.", no_args_is_help=True)
_get_settings: list[Callable[[], Any]] = []
"""The CLI's settings getter, set by :func:`register`."""


def register(app: typer.Typer, get_settings: Callable[[], Any]) -> None:
    """Add ``dataset``, ``train``, ``backtest``, ``model`` and ``bench inference`` to ``app``."""
    _get_settings[:] = [get_settings]
    bench_app = command_group(app, "bench", "Benchmarks: each prints JSON figures.")
    app.add_typer(dataset_app, name="dataset")
    app.add_typer(model_app, name="model")
    app.command("train")(train)
    app.command("backtest")(backtest)
    bench_app.command("inference")(bench_inference_cmd)


def _settings() -> Any:
    return _get_settings[0]()


def registry_dir(registry: Path | None) -> Path:
    return Path(registry) if registry is not None else Path(_settings().model_registry)


@dataset_app.command("from-log")
def from_log(
    file: Annotated[Path, typer.Argument(help="Order log CSV (.csv or .csv.gz)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output long-table CSV")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="Log format: uci, or completejourney (FILE: the word 'package' or a "
            "directory of exported Complete Journey files)",
        ),
    ] = "uci",
    freq: FreqOpt = "D",
    top: Annotated[
        int | None, typer.Option("--top", help="Keep the N SKUs with most units")
    ] = None,
    from_log_start: Annotated[
        bool,
        typer.Option(
            "--from-log-start",
            help="Every SKU from the log's first period (zeros before its first sale), "
            "not from its first sale",
        ),
    ] = False,
) -> None:
    """Turn an order log into a long table series_id,timestamp,target,price_rel,shop_open."""
    from models.data import read_uci_log, uci_to_long, write_long_table
    from models.exceptions import InputError

    if fmt.lower() not in ("uci", "completejourney"):
        raise _fail(InputError(f"unknown log format {fmt!r}; use --format uci|completejourney"))
    try:
        if fmt.lower() == "completejourney":
            from models.completejourney import load_tables, long_table

            table = long_table(load_tables(file), freq, top, from_log_start)
        else:
            table = uci_to_long(read_uci_log(file), freq, top, from_log_start)
        write_long_table(table, out)
    except DemandcastError as exc:
        raise _fail(exc) from None
    console.print(
        f"wrote {len(table):,} rows, {table['series_id'].nunique():,} series, "
        f"{table['timestamp'].min().date()}..{table['timestamp'].max().date()} → {out}"
    )


def train(
    data: DataOpt,
    horizon: HorizonOpt,
    freq: FreqOpt = "D",
    known: KnownOpt = None,
    static: StaticOpt = None,
    registry: RegistryOpt = None,
    steps: StepsOpt = 600,
    context: ContextOpt = None,
    backbone: BackboneOpt = "patch",
    gpt2_path: Gpt2PathOpt = None,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
    calibrate: CalibrateOpt = False,
    promote: Annotated[
        bool | None,
        typer.Option(
            "--promote/--no-promote", help="Promote the new version (default: if no champion)"
        ),
    ] = None,
) -> None:
    """Train the forecaster on a long table and register a new version."""
    from models.data import read_long_table
    from models.intervals import DEFAULT_DEPENDENCE
    from models.pipeline import training_summary
    from models.registry import ModelRegistry

    settings = _settings()
    try:
        panel = read_long_table(data, freq, _split(known), _split(static))
        opts = ModelOptions(steps, context, backbone, gpt2_path, seed, threads, calibrate)
        f = _build_forecaster(settings, freq, horizon, _split(known), _split(static), opts)
        seconds = _progress_fit(f, panel, horizon, "training")
        reg = ModelRegistry(registry_dir(registry))
        meta = {
            "training_data": {
                "path": str(data),
                "start": str(panel.index[0]),
                "end": str(panel.index[-1]),
                "fingerprint": panel.fingerprint(),
                "num_series": panel.num_series,
                "freq": panel.freq,
            },
            **training_summary(f, seconds),
            # the dependence between days of its interval totals (restock decisions): the
            # default fitted on the UCI backtest; refitting per version needs backtest windows
            "interval_dependence": {**DEFAULT_DEPENDENCE.as_dict(), "source": "default"},
        }
        version = reg.register(f, meta, promote=promote)
    except DemandcastError as exc:
        raise _fail(exc) from None
    vl = f"{f.val_loss:.4f}" if f.val_loss is not None else "n/a"
    console.print(f"validation loss (pinball, scaled): {vl}; trained in {seconds:.1f}s")
    console.print(
        f"registered {version} in {reg.root}" + (" (champion)" if reg.champion() == version else "")
    )


def _totals_cov90(intervals: dict[str, Any] | None) -> str:
    """The share of 14-day actual totals at or below their 0.9 quantile (the longest
    interval up to 14 days when the horizon is shorter), for the backtest table."""
    totals = (intervals or {}).get("totals") or {}
    ks = [k for k in totals if int(k) <= 14]
    if not ks:
        return "-"
    cov = totals[max(ks, key=int)]["coverage"].get("0.9")
    return f"{cov:.3f}" if cov is not None and cov == cov else "-"


def backtest(
    data: DataOpt,
    horizon: HorizonOpt,
    windows: Annotated[int, typer.Option("--windows", min=1, help="Rolling windows")] = 4,
    season: Annotated[int, typer.Option("--season", min=1, help="Season length")] = 7,
    freq: FreqOpt = "D",
    known: KnownOpt = None,
    static: StaticOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG with quantile bands")] = None,
    steps: StepsOpt = 600,
    context: ContextOpt = None,
    backbone: BackboneOpt = "patch",
    gpt2_path: Gpt2PathOpt = None,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
    calibrate: CalibrateOpt = False,
    no_model: Annotated[bool, typer.Option("--no-model", help="Baselines only")] = False,
    promoted_column: Annotated[
        str | None,
        typer.Option(
            "--promoted-column",
            help="Also score only the SKU-periods where this table column is > 0 "
            "(e.g. promoted): each method's 'promoted' figures",
        ),
    ] = None,
) -> None:
    """Rolling-origin backtest of the model and every baseline over the last W windows."""
    from models.backtest import run_backtest
    from models.baselines import default_baselines
    from models.data import read_long_table

    settings = _settings()
    try:
        panel = read_long_table(data, freq, _split(known), _split(static))
        methods: list[Any] = []
        if not no_model:
            opts = ModelOptions(steps, context, backbone, gpt2_path, seed, threads, calibrate)
            methods.append(
                _build_forecaster(settings, freq, horizon, _split(known), _split(static), opts)
            )
        levels = methods[0].quantile_levels if methods else None
        methods = default_baselines(season, levels) + methods
        t0 = time.perf_counter()
        with console.status("backtesting ...") as status:
            result = run_backtest(
                panel,
                methods,
                horizon,
                windows,
                season,
                on_progress=lambda m: status.update(f"backtest: {m}"),
            )
        elapsed = time.perf_counter() - t0
        if plot is not None:
            best = methods[-1].name
            _plot_backtest(result, panel, str(plot), best)
    except DemandcastError as exc:
        raise _fail(exc) from None
    payload: dict[str, Any] = dict(result.metrics)
    if promoted_column is not None:
        try:
            levels = list(methods[0].quantile_levels)
            mask = _read_mask(data, freq, promoted_column)
            payload = _score_promoted(result, panel, mask, season, levels, payload)
            console.print(f"promoted ({promoted_column} > 0): {int(mask.sum()):,} SKU-periods")
        except DemandcastError as exc:
            raise _fail(exc) from None
    if as_json:
        print(json.dumps(payload, sort_keys=False, default=float))
    else:
        from rich import box
        from rich.table import Column, Table

        rows = [
            [
                name,
                *(f"{m[k]:.3f}" for k in ("mase", "wql", "wape", "bias", "coverage80")),
                *(
                    f"{m['skill'][k]:.1%}" if m["skill"][k] is not None else "-"
                    for k in ("mase", "wql")
                ),
                _totals_cov90(m.get("intervals")),
            ]
            for name, m in payload.items()
        ]
        names = (
            "method", "MASE", "WQL", "WAPE", "bias", "cov80", "skill\nMASE", "skill\nWQL",
            "cov90\nk<=14",
        )  # fmt: skip
        # two-line headers, every cell whole (never "seasonal_…"): fits 80 columns
        table = Table(
            *(
                Column(
                    n,
                    min_width=max(len(r[i]) for r in rows),
                    no_wrap=True,
                    justify="right" if i else "left",
                )
                for i, n in enumerate(names)
            ),
            box=box.SIMPLE_HEAD,
        )
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    console.print(
        f"backtest took {elapsed:.1f}s; fit+predict seconds per method: "
        + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items())
    )


def _on_registry(registry: Path | None, call: Callable[[Any], Any]) -> Any:
    """``call(ModelRegistry)`` on the chosen registry; a registry error fails the command."""
    from models.registry import ModelRegistry

    try:
        return call(ModelRegistry(registry_dir(registry)))
    except DemandcastError as exc:
        raise _fail(exc) from None


def _read_mask(data: Path, freq: str, column: str) -> Any:
    """The ``(series, periods)`` cells of the table where ``column`` > 0."""
    from models.data import read_long_table

    return read_long_table(data, freq, [column]).known[column] > 0


def _score_promoted(
    result: Any, panel: Any, mask: Any, season: int, levels: list[float], payload: Any
) -> dict[str, Any]:
    """Each method's figures, plus under ``promoted`` those on the cells of ``mask`` only
    (scored by :func:`models.evaluation.evaluate_where`)."""
    from models.evaluation import evaluate_where

    out = {}
    for name, metrics in payload.items():
        ev = evaluate_where(
            result.forecasts[name], panel.target, panel.observed, mask, levels, season
        )
        out[name] = {**metrics, "promoted": {**ev.summary(), "observed": ev.observed}}
    return out


@model_app.command("list")
def model_list(registry: RegistryOpt = None) -> None:
    """List the registered versions (champion marked with *)."""
    rows = _on_registry(registry, lambda r: r.list())
    if not rows:
        console.print(f"no versions in {registry_dir(registry)}")
    for r in rows:
        mark = "*" if r.champion else " "
        print(f"{mark} {r.version}  created {r.created_at}  parent {r.parent or '-'}")


@model_app.command("show")
def model_show(version: str, registry: RegistryOpt = None) -> None:
    """Print a version's metadata and config as JSON."""
    info = _on_registry(registry, lambda r: r.show(version))
    print(json.dumps(info, indent=2, sort_keys=True, default=str))


@model_app.command("promote")
def model_promote(version: str, registry: RegistryOpt = None) -> None:
    """Make VERSION the champion."""
    _on_registry(registry, lambda r: r.promote(version))
    console.print(f"champion: {version}")


@model_app.command("rollback")
def model_rollback(registry: RegistryOpt = None) -> None:
    """Make the previous champion the champion again."""
    version = _on_registry(registry, lambda r: r.rollback())
    console.print(f"champion: {version}")


def bench_inference_cmd(
    series: Annotated[int, typer.Option("--series", min=1, help="Number of series")] = 10_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    champion: Annotated[
        bool,
        typer.Option(
            "--champion", help="Benchmark the registry's champion instead of the serving config"
        ),
    ] = False,
    registry: RegistryOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 512,
    threads: ThreadsOpt = 0,
    compile_model: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile the model, as the forecast worker does (default: the "
            "model_compile setting)",
        ),
    ] = None,
) -> None:
    """Forecast N random series and report series/s, device, batch size and peak RSS."""
    import torch

    from models.bench import bench_inference
    from models.config import DemandcastConfig
    from models.pipeline import TransformerForecaster

    settings = _settings()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        if champion:
            from models.registry import ModelRegistry

            f = ModelRegistry(registry_dir(registry)).load_champion(settings.device)
            f.batch_size = batch_size
        else:
            f = TransformerForecaster(
                DemandcastConfig(), device=settings.device, batch_size=batch_size
            )
            from models.modeling import DemandcastForecaster
            from models.synthetic import synthetic_panel

            f._prepare_config(synthetic_panel(4, 8), f.config.prediction_length)
            f.model = torch.nn.Module.to(DemandcastForecaster(f.config), f.device).eval()
        default = bool(getattr(settings, "model_compile", False))
        f.compile = default if compile_model is None else compile_model
        result = bench_inference(f, series)
    except DemandcastError as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")


__all__ = ["register"]
