"""The second demo's report and its command-line choice of dataset."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from demandcast.cli import app
from demandcast.demo_cj import CjDemoOptions, CjDemoRun, render


def test_the_report_scores_overall_and_promoted_days_and_lists_the_promotions() -> None:
    run = CjDemoRun(
        model_version="v0003",
        promotions={"display": 253, "mailer": 160},
        metrics={
            "model": {"mase": 1.01, "wql": 0.38, "coverage80": 0.764},
            "seasonal_naive": {"mase": 1.21, "wql": 0.63},
            "model_promoted": {"mase": 1.39, "wql": 0.34, "coverage80": 0.829},
        },
        alerts={"pricing_promo_lift_off_plan": 2, "restock": 0},
    )
    lift = {"sku": "1029743", "promotion_id": "cj-display-1029743-w40", "evidence": "lift 1.8"}
    text = render(CjDemoOptions(top=30), run, 106, [lift], Path("promoted_products.png"))
    assert "| model_promoted | 1.390 | 0.340 | 82.9% |" in text
    assert "| seasonal_naive | 1.210 | 0.630 |  |" in text
    assert '"display": 253' in text and "cj-display-1029743-w40: lift 1.8" in text
    assert "![promoted products](promoted_products.png)" in text


def test_an_unknown_dataset_is_refused() -> None:
    result = CliRunner().invoke(app, ["demo", "--dataset", "rees46"])
    assert result.exit_code != 0 and "uci or completejourney" in result.output
