"""The typer commands registered by demandcast.cli_models, on a small table."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from demandcast.cli_models import register
from models.synthetic import synthetic_panel

from .test_data import LOG


@pytest.fixture
def app(tmp_path: Path) -> typer.Typer:
    app = typer.Typer()
    settings = SimpleNamespace(model_registry=tmp_path / "reg", device="cpu", holiday_country="GB")
    register(app, lambda: settings)
    return app


@pytest.fixture
def table(tmp_path: Path) -> Path:
    p = synthetic_panel(6, 84, seed=5)
    rows = [
        {
            "series_id": sid,
            "timestamp": ts,
            "target": p.target[i, j],
            "promo": float((j % 10) == 0),
            "category": f"c{i % 2}",
        }
        for i, sid in enumerate(p.series_ids)
        for j, ts in enumerate(p.index)
    ]
    out = tmp_path / "table.csv"
    pd.DataFrame(rows).to_csv(out, index=False)
    return out


def test_dataset_from_log(app: typer.Typer, tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(LOG + "\n")
    out = tmp_path / "out" / "long.csv"
    res = CliRunner().invoke(
        app,
        [
            "dataset",
            "from-log",
            str(log),
            "--format",
            "uci",
            "--freq",
            "D",
            "--top",
            "1",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert list(df.columns[:3]) == ["series_id", "timestamp", "target"]
    assert set(df["series_id"].astype(str)) == {"85123A"}


def test_train_model_commands(app: typer.Typer, table: Path, tmp_path: Path) -> None:
    run = CliRunner().invoke
    args = [
        "train",
        "--data",
        str(table),
        "--freq",
        "D",
        "--horizon",
        "7",
        "--known",
        "promo",
        "--static",
        "category",
        "--steps",
        "6",
        "--context",
        "14",
    ]
    res = run(app, args)
    assert res.exit_code == 0, res.output
    assert "validation loss" in res.output and "registered v0001" in res.output
    assert run(app, args).exit_code == 0
    res = run(app, ["model", "list"])
    assert res.exit_code == 0 and "* v0001" in res.output and "  v0002" in res.output
    shown = json.loads(run(app, ["model", "show", "v0002"]).stdout)
    assert shown["metadata"]["parent_version"] == "v0001"
    assert shown["metadata"]["training_data"]["num_series"] == 6
    dependence = shown["metadata"]["interval_dependence"]  # the default, said so
    assert dependence == {"rho": 0.35, "kind": "equicorrelation", "source": "default"}
    assert run(app, ["model", "promote", "v0002"]).exit_code == 0
    assert "* v0002" in run(app, ["model", "list"]).output
    assert run(app, ["model", "rollback"]).exit_code == 0
    assert "* v0001" in run(app, ["model", "list"]).output
    res = run(app, ["model", "promote", "v0042"])
    assert res.exit_code == 4 and "unknown model version" in res.output  # ExitCode.MODEL
    res = run(app, ["bench", "inference", "--series", "50", "--json", "--champion"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["context_length"] == 14


def test_backtest_json(app: typer.Typer, table: Path, tmp_path: Path) -> None:
    plot = tmp_path / "bands.png"
    res = CliRunner().invoke(
        app,
        [
            "backtest",
            "--data",
            str(table),
            "--freq",
            "D",
            "--horizon",
            "7",
            "--windows",
            "2",
            "--season",
            "7",
            "--known",
            "promo",
            "--json",
            "--steps",
            "5",
            "--context",
            "14",
            "--plot",
            str(plot),
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {
        "seasonal_naive",
        "seasonal_naive_band",
        "zero",
        "moving_average",
        "exp_smoothing",
        "seasonal_quantiles",
        "transformer",
    }
    for m in out.values():
        assert set(m) == {
            "mase", "wql", "wape", "bias", "coverage80", "quantile_coverage", "skill", "intervals"
        }  # fmt: skip
        assert np.isfinite([m["mase"], m["wql"], m["wape"], m["bias"], m["coverage80"]]).all()
        cov = m["quantile_coverage"]  # every level, not only the 80% interval
        assert list(cov) == [str(round(0.1 * i, 1)) for i in range(1, 10)]
        assert all(0.0 <= v <= 1.0 for v in cov.values())
        totals = m["intervals"]["totals"]  # horizon 7: only the 7-day totals
        assert set(totals) == {"7"}
        assert set(totals["7"]["coverage"]) == {"0.5", "0.8", "0.9", "0.95"}
        assert 0.0 <= totals["7"]["coverage"]["0.9"] <= 1.0 and totals["7"]["wql"] >= 0.0
    assert out["seasonal_naive"]["skill"] == {"mase": 0.0, "wql": 0.0}
    sm = out["transformer"]["skill"]["mase"]
    assert sm == pytest.approx(1 - out["transformer"]["mase"] / out["seasonal_naive"]["mase"])
    assert plot.exists() and plot.stat().st_size > 1000


def test_backtest_table_names_every_method_whole(app: typer.Typer, table: Path) -> None:
    args = ["backtest", "--data", str(table), "--horizon", "7", "--windows", "2", "--no-model"]
    res = CliRunner().invoke(app, args, terminal_width=80)
    assert res.exit_code == 0, res.output
    assert "…" not in res.stdout
    for name in ("seasonal_naive_band", "seasonal_quantiles", "moving_average", "exp_smoothing"):
        assert name in res.stdout
    assert max(len(line) for line in res.stdout.splitlines()) <= 80


def test_errors_are_clear(app: typer.Typer, table: Path, tmp_path: Path) -> None:
    run = CliRunner().invoke
    res = run(app, ["train", "--data", str(table), "--horizon", "7", "--known", "promotion"])
    assert res.exit_code == 2 and "unknown covariate" in res.output
    empty = tmp_path / "empty.csv"
    empty.write_text("series_id,timestamp,target\n")
    res = run(app, ["backtest", "--data", str(empty), "--horizon", "7", "--json"])
    assert res.exit_code == 2 and "empty" in res.output
    reg = tmp_path / "reg"
    (reg / "versions" / "v0001").mkdir(parents=True)
    (reg / "versions" / "v0001" / "metadata.json").write_text("{oops")
    res = run(app, ["model", "list"])
    assert res.exit_code == 4 and "metadata.json" in res.output  # ExitCode.MODEL


def test_bench_inference(app: typer.Typer) -> None:
    res = CliRunner().invoke(app, ["bench", "inference", "--series", "300", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {
        "series_per_s",
        "device",
        "batch_size",
        "context_length",
        "horizon",
        "peak_rss_mb",
    } <= set(out)
    assert out["series_per_s"] > 0 and out["horizon"] == 28
    assert out["compiled"] is False and out["compile_s"] == 0.0  # eager unless asked
