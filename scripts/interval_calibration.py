"""Calibration of interval-total quantiles (issue 16) on the real UCI log.

Builds the daily table of the top SKUs, runs the project's rolling-origin backtest (the
transformer as ``demandcast backtest`` builds it, plus every default baseline), and scores
the quantiles of the *total* demand over the first ``k`` days after each origin, as
:mod:`models.intervals` turns the daily quantiles into them, for several dependence
parameters: the sum of the daily quantiles (``rho = 1``, today's restock rule),
independent days (``rho = 0``) and ``rho`` estimated on the earlier windows only. The
history-based baseline (empirical quantiles of past k-day totals) is scored next to them.

Scored: the later windows (``--fit-windows`` earlier ones only estimate ``rho``), so no
figure is fitted on what it scores. Prints one JSON object (stdout) and a table (stderr).

    .venv/bin/python scripts/interval_calibration.py --cache /tmp/interval_bt.pkl

The backtest (~2 min on 2 cores) is cached in ``--cache``; later runs reuse it.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path("/work/shared/data/online_retail/online_retail.csv.gz")
KS = (7, 14, 28)
OUT_LEVELS = (0.5, 0.8, 0.9, 0.95)
MODEL = "transformer"


def run_or_load_backtest(args: argparse.Namespace) -> dict[str, Any]:
    """The backtest's forecasts: ``{"levels", "origins", "target", "observed", "methods":
    {name: [(origin, series, actual, quantiles), ...]}}`` (from ``--cache`` when present)."""
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        with cache.open("rb") as fh:
            loaded: dict[str, Any] = pickle.load(fh)
        return loaded
    from demandcast.cli import get_settings
    from demandcast.cli_models import ModelOptions, _build_forecaster
    from models.backtest import run_backtest
    from models.baselines import default_baselines
    from models.data import panel_from_frame, read_uci_log, uci_to_long

    t0 = time.perf_counter()
    panel = panel_from_frame(uci_to_long(read_uci_log(args.data), "D", args.top), "D")
    opts = ModelOptions(args.steps, None, "patch", None, args.seed, args.threads)
    model = _build_forecaster(get_settings(), "D", args.horizon, [], [], opts)
    methods = [*default_baselines(args.season, model.quantile_levels), model]
    result = run_backtest(
        panel,
        methods,
        args.horizon,
        args.windows,
        args.season,
        on_progress=lambda m: print(f"backtest: {m}", file=sys.stderr, flush=True),
    )
    out: dict[str, Any] = {
        "levels": list(model.quantile_levels),
        "target": panel.target,
        "observed": panel.observed,
        "model_name": model.name,
        "backtest_seconds": time.perf_counter() - t0,
        "backtest_metrics": result.metrics,
        "methods": {
            name: [(w.origin, w.series, w.actual, w.quantiles) for w in wins]
            for name, wins in result.forecasts.items()
        },
    }
    if cache is not None:
        with cache.open("wb") as fh:
            pickle.dump(out, fh)
    return out


def pinball(y: np.ndarray, q: np.ndarray, tau: float) -> np.ndarray:
    diff = y - q
    return np.asarray(np.maximum(tau * diff, (tau - 1.0) * diff))


def score_totals(
    y: np.ndarray, pred: np.ndarray, ks: tuple[int, ...], out_levels: tuple[float, ...]
) -> dict[str, Any]:
    """``y`` ``(P, K)`` actual totals, ``pred`` ``(P, K, Lo)`` → per ``k``: the share of
    totals at or below each quantile, the mean pinball loss per level and the wQL."""
    from models.intervals import interval_loss

    out: dict[str, Any] = {}
    for i, k in enumerate(ks):
        ok = ~np.isnan(y[:, i])
        yy, pp = y[ok, i], pred[ok, i]
        out[str(k)] = {
            "n": int(ok.sum()),
            "coverage": {
                str(t): float((yy <= pp[:, j] + 1e-9).mean()) for j, t in enumerate(out_levels)
            },
            "pinball": {
                str(t): float(pinball(yy, pp[:, j], t).mean()) for j, t in enumerate(out_levels)
            },
            "wql": interval_loss(pp[:, None], yy[:, None], out_levels),
        }
    return out


def moment_gamma(
    q: np.ndarray, levels: list[float], ks: tuple[int, ...], olv: tuple[float, ...], rho: float
) -> np.ndarray:
    """The moment-matched alternative: each day's mean and variance from its quantile
    function, the total's variance with correlation ``rho`` between every two days, and
    a gamma distribution with that mean and variance (Wilson–Hilferty quantiles)."""
    from statistics import NormalDist

    from models.intervals import quantile_function

    u = (np.arange(400) + 0.5) / 400
    v = quantile_function(q, levels, u)
    mu = v.mean(axis=-1)
    var = np.maximum((v * v).mean(axis=-1) - mu * mu, 0.0)
    sd = np.sqrt(var)
    z = np.array([NormalDist().inv_cdf(t) for t in olv])
    out = np.empty((q.shape[0], len(ks), len(olv)))
    for i, k in enumerate(ks):
        m = mu[:, :k].sum(axis=1)
        s1, s2 = sd[:, :k].sum(axis=1), var[:, :k].sum(axis=1)
        total_var = s2 + rho * (s1 * s1 - s2)
        with np.errstate(all="ignore"):
            shape = np.where(total_var > 0, m * m / total_var, np.inf)
            c = 1.0 / (9.0 * shape[:, None])
            wh = m[:, None] * np.clip(1.0 - c + z * np.sqrt(c), 0.0, None) ** 3
        out[:, i] = np.where(total_var[:, None] > 0, wh, m[:, None])
    return np.maximum.accumulate(np.nan_to_num(out), axis=-1)


def _stack(wins: list[Any], i: int) -> np.ndarray:
    return np.concatenate([w[i] for w in wins])


def _estimates(
    fit_q: np.ndarray, fit_y: np.ndarray, levels: list[float], m: int
) -> dict[str, float]:
    """Every estimate of rho on the fit windows: PIT correlation, fitted copulas, moments."""
    from models.intervals import estimate_rho, fit_rho, interval_loss, interval_totals, pit_values

    ks, olv = KS, OUT_LEVELS
    pit = pit_values(fit_q, levels, fit_y)
    est = {
        "pit_equicorrelation": estimate_rho(pit, "equicorrelation", max(ks)),
        "pit_ar1": estimate_rho(pit, "ar1", max(ks)),
        "fit_equicorrelation": fit_rho(fit_q, levels, fit_y, ks, olv, num_samples=m),
        "fit_ar1": fit_rho(fit_q, levels, fit_y, ks, olv, "ar1", num_samples=m),
    }
    y_fit = interval_totals(fit_y, ks)
    grid = [round(0.025 * i, 3) for i in range(41)]
    mom = {r: interval_loss(moment_gamma(fit_q, levels, ks, olv, r), y_fit, olv) for r in grid}
    est["fit_moments_gamma"] = min(grid, key=lambda r: (mom[r], r))
    return est


def _score_method(
    sc_q: np.ndarray, sc_y: np.ndarray, levels: list[float], est: dict[str, float], m: int
) -> dict[str, Any]:
    """One method's scored windows under every way of building totals."""
    from models.intervals import interval_quantiles, interval_totals

    ks, olv = KS, OUT_LEVELS
    y_score = interval_totals(sc_y, ks)
    copulas: dict[str, tuple[float, Any]] = {
        "sum of daily (rho=1)": (1.0, "equicorrelation"),
        "independent (rho=0)": (0.0, "equicorrelation"),
        "PIT rho, equicorr.": (est["pit_equicorrelation"], "equicorrelation"),
        "PIT rho, AR(1)": (est["pit_ar1"], "ar1"),
        "fitted rho, AR(1)": (est["fit_ar1"], "ar1"),
        "fitted rho, equicorr.": (est["fit_equicorrelation"], "equicorrelation"),
    }
    res: dict[str, Any] = {}
    for label, (rho, kind) in copulas.items():
        pred = interval_quantiles(sc_q, levels, ks, olv, rho, kind, num_samples=m)
        res[label] = {"rho": rho, "dependence": kind, **score_totals(y_score, pred, ks, olv)}
    pred = moment_gamma(sc_q, levels, ks, olv, est["fit_moments_gamma"])
    res["moments+gamma, fitted"] = {
        "rho": est["fit_moments_gamma"],
        "dependence": "value correlation",
        **score_totals(y_score, pred, ks, olv),
    }
    return res


def _sum_rule_ratio(sc_q: np.ndarray, levels: list[float], rho: float) -> float | None:
    """Median of (sum of daily 0.9 quantiles) / (0.9 quantile of the total), k = 14."""
    from models.intervals import interval_quantiles

    chosen = interval_quantiles(sc_q, levels, (14,), (0.9,), rho)
    summed = interval_quantiles(sc_q, levels, (14,), (0.9,), 1.0)
    pos = chosen[:, 0, 0] > 0
    return float(np.median(summed[pos, 0, 0] / chosen[pos, 0, 0])) if pos.any() else None


def _empirical_totals(bt: dict[str, Any], score_w: list[Any]) -> dict[str, Any]:
    """The history baseline: empirical quantiles of past k-day totals (nothing to fit)."""
    from models.intervals import empirical_interval_quantiles, interval_totals

    ks, olv = KS, OUT_LEVELS
    target, observed = bt["target"], bt["observed"]
    y_score = interval_totals(_stack(score_w, 2), ks)
    emp: dict[str, Any] = {}
    for lookback in (28, 56, 112):
        pred = np.concatenate(
            [
                empirical_interval_quantiles(
                    target[w[1], : w[0]], ks, olv, lookback, observed[w[1], : w[0]]
                )
                for w in score_w
            ]
        )
        emp[f"past totals, {lookback} d"] = {
            "lookback": lookback,
            **score_totals(y_score, pred, ks, olv),
        }
    return emp


def _speed_ms(q: np.ndarray, levels: list[float], rho: float, horizon: int, m: int) -> dict:
    """interval_quantiles on the forecasts tiled to 2,048 SKUs x horizon, as the worker has."""
    from models.intervals import interval_quantiles

    big = np.resize(q, (2048, horizon, len(levels)))
    interval_quantiles(big, levels, KS, OUT_LEVELS, rho, num_samples=m)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        interval_quantiles(big, levels, KS, OUT_LEVELS, rho, num_samples=m)
        runs.append(time.perf_counter() - t0)
    return {"median": 1e3 * float(np.median(runs)), "min": 1e3 * min(runs)}


def evaluate(bt: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    levels = list(bt["levels"])
    names = list(bt["methods"])
    origins = sorted({w[0] for w in bt["methods"][names[0]]})
    fit_o, score_o = origins[: args.fit_windows], origins[args.fit_windows :]
    if not fit_o or not score_o:
        raise SystemExit(f"need fit and scored windows; origins {origins}, fit {args.fit_windows}")
    m = args.samples
    results: dict[str, Any] = {}
    rhos: dict[str, Any] = {}
    daily90: dict[str, float] = {}
    fit_seconds: dict[str, float] = {}
    ratio: dict[str, float | None] = {}
    for name in names:
        wins = bt["methods"][name]
        fit_w = [w for w in wins if w[0] in fit_o]
        score_w = [w for w in wins if w[0] in score_o]
        sc_q, sc_y = _stack(score_w, 3), _stack(score_w, 2)
        t0 = time.perf_counter()
        rhos[name] = est = _estimates(_stack(fit_w, 3), _stack(fit_w, 2), levels, m)
        fit_seconds[name] = time.perf_counter() - t0
        i90 = levels.index(0.9) if 0.9 in levels else len(levels) - 1
        daily90[name] = float(np.nanmean(np.where(np.isnan(sc_y), np.nan, sc_y <= sc_q[..., i90])))
        results[name] = _score_method(sc_q, sc_y, levels, est, m)
        ratio[name] = _sum_rule_ratio(sc_q, levels, est["fit_equicorrelation"])
    score_w = [w for w in bt["methods"][names[0]] if w[0] in score_o]
    results["empirical_totals"] = _empirical_totals(bt, score_w)
    last = names[-1]
    speed = _speed_ms(
        _stack(bt["methods"][last], 3), levels, rhos[last]["fit_equicorrelation"], args.horizon, m
    )
    return {
        "data": str(args.data),
        "top": args.top,
        "horizon": args.horizon,
        "windows": len(origins),
        "fit_origins": [int(o) for o in fit_o],
        "scored_origins": [int(o) for o in score_o],
        "ks": list(KS),
        "levels": list(OUT_LEVELS),
        "num_samples": m,
        "rho": rhos,
        "daily_coverage90_scored": daily90,
        "results": results,
        "sum_rule_over_interval_q90_k14_median": ratio,
        "interval_quantiles_ms_2048x28_k3_l4": speed,
        "fit_seconds": fit_seconds,
    }


def print_table(report: dict[str, Any]) -> None:
    """Per method and way of building totals: rho, the share of actual totals at or below
    the 0.9 quantile for each k, the other levels at k = 14, and the totals' wQL per k."""
    ks = [str(k) for k in report["ks"]]
    cols = [("0.9", k) for k in ks] + [(t, "14") for t in ("0.5", "0.8", "0.95")]
    head = f"{'method':<20}{'interval totals':<24}{'rho':>6}"
    head += "".join(f"{'q' + t + ' k' + k:>10}" for t, k in cols)
    head += "".join(f"{'wQL k' + k:>9}" for k in ks)
    print(head, file=sys.stderr)
    for name, res in report["results"].items():
        for label, r in res.items():
            rho = r["rho"] if "rho" in r else r["lookback"]
            shown = f"{rho:.3f}" if isinstance(rho, float) else f"{rho} d"
            row = f"{name:<20}{label:<24}{shown:>6}"
            row += "".join(f"{r[k]['coverage'][t]:>10.3f}" for t, k in cols)
            row += "".join(
                f"{r[k]['wql']:>9.3f}" if r[k]["wql"] is not None else f"{'-':>9}" for k in ks
            )
            print(row, file=sys.stderr)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DATA), help="UCI order log (.csv.gz)")
    p.add_argument("--top", type=int, default=500, help="SKUs with most units")
    p.add_argument("--horizon", type=int, default=28)
    p.add_argument("--windows", type=int, default=4)
    p.add_argument("--season", type=int, default=7)
    p.add_argument("--fit-windows", type=int, default=2, help="Earlier windows that fit rho")
    p.add_argument("--steps", type=int, default=600, help="Transformer training steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--cache", default=None, help="Pickle of the backtest's forecasts")
    p.add_argument("--samples", type=int, default=512, help="Draws of the copula (M)")
    p.add_argument("--backtest-only", action="store_true", help="Run/cache the backtest, stop")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bt = run_or_load_backtest(args)
    if args.backtest_only:
        print(json.dumps({"backtest_seconds": bt["backtest_seconds"]}))
        return 0
    report = evaluate(bt, args)
    report["backtest_seconds"] = bt["backtest_seconds"]
    print(json.dumps(report, default=float))
    print_table(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
