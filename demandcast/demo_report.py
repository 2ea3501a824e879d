"""The demo's report: the streamed forecasts scored at their daily origins
(``models.evaluation``), the picture of forecast bands, and the Markdown summary."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from demandcast.demo import DemoOptions, DemoRun
from streams.settings import Settings

DAY = timedelta(days=1)


def _read_topic(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """Every JSON message of ``topic``, from the beginning."""
    from streams.kafka.tail import tail

    return [
        m.value
        for m in tail(settings, topic, from_beginning=True, idle_timeout_s=5)
        if m.value is not None
    ]


def daily_origin_forecasts(
    forecasts: list[dict[str, Any]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """The first forecast of each SKU on each day (the one made with yesterday complete)."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for fc in forecasts:
        day = fc["steps"][0]["timestamp"][:10]
        key = (fc["sku"], day)
        if key not in first or fc["window"]["end"] < first[key]["window"]["end"]:
            first[key] = fc
    return first


def write_report(
    settings: Settings, opts: DemoOptions, run: DemoRun, client: Any, console: Console
) -> None:
    """The PNG of forecast bands and the Markdown summary."""
    from streams.store.keys import layout_of
    from streams.store.reader import FeatureReader

    opts.report_dir.mkdir(parents=True, exist_ok=True)
    forecasts = _read_topic(settings, settings.topic_forecasts)
    run.served_versions = dict(Counter(str(f["model_version"]) for f in forecasts))
    origins = daily_origin_forecasts(forecasts)
    reader = FeatureReader(client, layout_of(settings))
    skus = sorted({sku for sku, _ in origins})
    end = datetime.fromisoformat(run.log_end) if run.log_end else opts.split
    history_start = opts.split - 8 * 7 * DAY
    actual = reader.buckets(skus, history_start, end, "D", ("units",)).metric("units")
    day0 = np.datetime64(history_start.replace(tzinfo=None), "D")
    row = {sku: i for i, sku in enumerate(skus)}
    metrics = score_origins(origins, actual, row, day0, end)
    png = plot_bands(opts, run, origins, actual, row, day0)
    restock = _read_topic(settings, settings.topic_alerts_restock)
    pricing = _read_topic(settings, settings.topic_alerts_pricing)
    (opts.report_dir / "summary.md").write_text(
        render_summary(opts, run, metrics, len(forecasts), len(origins), restock, pricing)
    )
    console.print(f"report written to {opts.report_dir} ({png.name}, summary.md)")


def score_origins(
    origins: dict[tuple[str, str], dict[str, Any]],
    actual: np.ndarray,
    row: dict[str, int],
    day0: np.datetime64,
    end: datetime,
    subsets: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """Accuracy: every daily origin, every step with an actual, against seasonal naive at
    the same origin; each (SKU, day) is scaled by the history before that day. ``subsets``:
    name → ``(N, T)`` mask (as ``actual``) of the cells also scored on their own (e.g. the
    promoted SKU-days), as ``model_<name>`` and ``seasonal_naive_<name>``."""
    from models.evaluation import Scorer

    scorers: dict[str, Scorer] = {}
    last_actual_day = int((np.datetime64(end.replace(tzinfo=None), "D") - day0).astype(int)) - 1
    for (sku, day), fc in sorted(origins.items()):
        levels = fc["quantile_levels"]
        t0 = int((np.datetime64(day, "D") - day0).astype(int))
        steps = min(len(fc["steps"]), last_actual_day - t0)
        if t0 < 14 or steps < 1:
            continue
        i = row[sku]
        y = actual[i, t0 : t0 + steps][None]
        q = np.array([s["values"] for s in fc["steps"][:steps]])[None]
        hist = actual[i, :t0][None]
        week = hist[0, -7:]
        sn = np.array([week[h % 7] for h in range(steps)])
        naive = np.repeat(sn[None, :, None], len(levels), axis=2)
        for name, forecast in (("model", q), ("seasonal_naive", naive)):
            scorers.setdefault(name, Scorer(levels, 7)).add(y, forecast, hist)
            for sub, mask in (subsets or {}).items():
                cells = mask[i, t0 : t0 + steps][None].astype(bool)
                if cells.any():
                    scorers.setdefault(f"{name}_{sub}", Scorer(levels, 7)).add(
                        y, forecast, hist, observed=cells
                    )
    metrics: dict[str, dict[str, float]] = {}
    for name, scorer in scorers.items():
        e = scorer.evaluation()
        metrics[name] = {"mase": e.mase, "wql": e.wql}
        if name.startswith("model"):
            metrics[name]["coverage80"] = e.coverage80
    return metrics


def draw_bands(
    ax: Any, origins: dict[tuple[str, str], dict[str, Any]], sku: str, horizon: int
) -> None:
    """Up to four of ``sku``'s forecast bands (outermost levels) and medians, one every
    ``horizon`` origins, on ``ax``."""
    days = sorted(day for s, day in origins if s == sku)
    for k, day in enumerate(days[:: max(1, horizon)][:4]):
        fc = origins[(sku, day)]
        lv = fc["quantile_levels"]
        ts = np.array([np.datetime64(s["timestamp"][:10], "D") for s in fc["steps"]])
        q = np.array([s["values"] for s in fc["steps"]])
        ax.fill_between(
            ts,
            q[:, 0],
            q[:, -1],
            color="tab:blue",
            alpha=0.25,
            label=f"q{lv[0]}–q{lv[-1]}" if k == 0 else None,
        )
        ax.plot(
            ts,
            q[:, lv.index(0.5)] if 0.5 in lv else q.mean(axis=1),
            color="tab:blue",
            lw=1.2,
            label="median forecast" if k == 0 else None,
        )


def accuracy_table(metrics: dict[str, dict[str, float]]) -> list[str]:
    """The Markdown table of ``score_origins``'s figures, a row per method."""
    lines = [
        "| method | MASE | WQL | coverage of the 80% interval |",
        "|---|---|---|---|",
    ]
    for name, m in metrics.items():
        cov = m.get("coverage80")
        lines.append(
            f"| {name} | {m['mase']:.3f} | {m['wql']:.3f} | {'' if cov is None else f'{cov:.1%}'} |"
        )
    return lines


def plot_bands(
    opts: DemoOptions,
    run: DemoRun,
    origins: dict[tuple[str, str], dict[str, Any]],
    actual: np.ndarray,
    row: dict[str, int],
    day0: np.datetime64,
) -> Path:
    """The picture: the SKUs with the most forecasts, their actual daily units and a few
    of their forecast bands; the replay's start marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = Counter(sku for sku, _ in origins)
    chosen = [sku for sku, _ in counts.most_common(opts.plot_skus)]
    fig, axes = plt.subplots(len(chosen) or 1, 1, figsize=(11, 2.6 * max(1, len(chosen))))
    axes_list = np.atleast_1d(axes)
    dates = day0 + np.arange(actual.shape[1])
    for ax, sku in zip(axes_list, chosen, strict=False):
        i = row[sku]
        ax.plot(dates, actual[i], color="black", lw=1, label="actual units")
        draw_bands(ax, origins, sku, opts.horizon)
        ax.axvline(np.datetime64(opts.split.date()), color="grey", ls="--", lw=0.8)
        ax.set_title(f"SKU {sku}", fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(
        f"demandcast demo: daily units vs forecast bands (model {run.model_version})", fontsize=10
    )
    fig.tight_layout()
    png = opts.report_dir / "forecast_bands.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def render_summary(
    opts: DemoOptions,
    run: DemoRun,
    metrics: dict[str, dict[str, float]],
    n_forecasts: int,
    n_origins: int,
    restock: list[dict[str, Any]],
    pricing: list[dict[str, Any]],
) -> str:
    s = run.stream_stats
    lines = [
        "# demandcast demo report",
        "",
        f"Real data: the UCI Online Retail log; model trained on the log before "
        f"{opts.split.date()} (top {opts.top} SKUs, daily, horizon {opts.horizon}), the rest "
        f"replayed through the live stream worker and forecast worker.",
        "",
        "**Inventory is simulated**: the log has none. Every top SKU starts with "
        f"{opts.cover_days:g} days of cover (mean daily units of its last 8 training weeks), "
        f"sells down with the real orders and is replenished by a reorder-point policy with a "
        f"{opts.lead_time_days:g}-day lead time. Restock alerts are about that simulated stock.",
        "",
        "## Run",
        "",
        f"- model version: {run.model_version}"
        + (
            " (reused: trained on the same table before)"
            if run.model_reused
            else f" (trained here in {run.train_seconds:.0f} s)"
        ),
        f"- history backfilled into the feature store (not forecast): {run.history_events:,} "
        f"events in {run.history_seconds:.1f} s",
        f"- events replayed live at {opts.speed:,.0f}x real time: {run.events:,} "
        f"({run.inventory_events:,} of them simulated inventory) in {run.replay_seconds:.1f} s, "
        f"forecasts caught up {run.drain_seconds:.1f} s later",
        f"- feature store: {s.get('events', 0):,} events, {s.get('duplicates', 0)} duplicates, "
        f"{s.get('late', 0)} late, {s.get('dead_letters', 0)} dead letters, "
        f"{s.get('windows_closed', 0):,} windows closed",
        f"- forecasts published: {n_forecasts:,} ({n_origins:,} SKU-days); forecast worker: "
        f"{json.dumps(run.forecaster_stats)}",
        "",
        "## Accuracy of the streamed forecasts",
        "",
        "Each SKU's first forecast of each day (yesterday complete), every horizon step that "
        "the log covers, against the actual daily units; seasonal naive (last week repeated) "
        "at the same origins for comparison. MASE is scaled by each series' in-sample "
        "seasonal-naive error.",
        "",
        *accuracy_table(metrics),
    ]
    lines += [
        "",
        "## Alerts",
        "",
        f"- restock: {sum(a['status'] == 'open' for a in restock)} opened, "
        f"{sum(a['status'] == 'resolved' for a in restock)} resolved (simulated stock)",
        f"- pricing: {len(pricing)} "
        f"({', '.join(f'{k}: {v}' for k, v in Counter(a['kind'] for a in pricing).items())})",
        "",
    ]
    for a in restock[:3]:
        lines.append(
            f"- restock {a['status']} {a['sku']} at {a['window']['end']}: order "
            f"{a['recommended_order_qty']}, {a['days_of_cover']} days of cover, demand over "
            f"lead time {a['demand_over_lead_time']} vs on hand {a['on_hand']} + on order "
            f"{a['on_order']}"
        )
    for a in pricing[:3]:
        lines.append(f"- pricing {a['kind']} {a['sku']}: {a['evidence']}")
    lines += restock_policy_table(run.restock_policies, opts.lead_time_days)
    if opts.updater:
        lines += updater_timeline(run.updater_decisions, run.served_versions)
    lines += ["", "![forecast bands](forecast_bands.png)", ""]
    return "\n".join(lines)


def _wql_of(figures: dict[str, dict[str, float]]) -> str:
    return ", ".join(
        f"{who} {f['wql']:.4f}" for who, f in figures.items() if isinstance(f.get("wql"), float)
    )


def updater_timeline(decisions: list[dict[str, Any]], served: dict[str, int]) -> list[str]:
    """The updater's decisions of the run (event time, outcome, triggers, versions, WQL of
    each model by stage) and the forecasts each version served."""
    lines = [
        "",
        "## The updater",
        "",
        "`demandcast updater` ran beside the workers during the live replay (its clock: the "
        "feature store's watermark). Each decision below is in `demandcast model history`.",
        "",
    ]
    if not decisions:
        lines.append("- no decision in this run (no trigger fired, or no cycle finished)")
    else:
        lines += [
            "| event day | outcome | triggers | champion | candidate | WQL | reason |",
            "|---|---|---|---|---|---|---|",
        ]
        for d in decisions:
            kinds = ",".join(t.get("kind", "?") for t in d.get("triggers") or [])
            reason = str(d.get("reason", "")).replace("|", "/")[:160]
            lines.append(
                f"| {str(d.get('event_time') or '')[:10]} | {d.get('outcome')} | {kinds} | "
                f"{d.get('champion') or ''} | {d.get('candidate') or ''} | "
                f"{_wql_of(d.get('figures') or {})} | {reason} |"
            )
    if served:
        shares = ", ".join(f"{v}: {n:,}" for v, n in sorted(served.items()))
        lines += ["", f"- forecasts served by version: {shares}"]
    return lines


POLICY_COLUMNS = (
    ("service_level", "cycle service level", "{:.3f}"),
    ("fill_rate", "fill rate", "{:.3f}"),
    ("avg_on_hand_units", "avg units on hand", "{:.1f}"),
    ("avg_on_hand_days", "avg days on hand", "{:.1f}"),
    ("stockout_days", "stock-out SKU-days", "{:,}"),
    ("orders", "orders", "{:,}"),
    ("alerts_per_sku_month", "alerts / SKU / month", "{:.2f}"),
)


def restock_policy_table(policies: dict[str, dict[str, float]], lead_time_days: float) -> list[str]:
    """The decision backtest's table (``demandcast bench restock``), or nothing without it."""
    if not policies:
        return []
    lines = [
        "",
        "## Restock decisions on simulated stock",
        "",
        "Each policy's own recommendations replayed over the period (`demandcast bench "
        f"restock`): orders placed as recommended arrive after {lead_time_days:g} days; "
        "demand is the log's, unmet demand is lost. The cycle service level leaves out the "
        "warm-up cycle (an opening stock already below the reorder point).",
        "",
        "| policy | " + " | ".join(title for _, title, _ in POLICY_COLUMNS) + " |",
        "|---|" + "---|" * len(POLICY_COLUMNS),
    ]
    for name, row in policies.items():
        cells = [fmt.format(row[key]) if key in row else "" for key, _, fmt in POLICY_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
