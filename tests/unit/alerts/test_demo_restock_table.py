"""The demo report's restock table renders the decision backtest's policies as given."""

from __future__ import annotations

from demandcast.demo_report import POLICY_COLUMNS, restock_policy_table


def test_the_table_has_one_row_per_policy_with_every_figure() -> None:
    row = {
        "service_level": 0.8992,
        "fill_rate": 0.904,
        "avg_on_hand_units": 348.41,
        "avg_on_hand_days": 15.3,
        "stockout_days": 1234,
        "orders": 4505,
        "alerts_per_sku_month": 2.74,
    }
    lines = restock_policy_table({"model": row, "seasonal_naive": {**row, "orders": 7954}}, 7)
    body = [ln for ln in lines if ln.startswith("| ")]
    assert len(body) == 3  # the header and two policies
    assert body[1] == "| model | 0.899 | 0.904 | 348.4 | 15.3 | 1,234 | 4,505 | 2.74 |"
    assert "| 7,954 |" in body[2]
    assert body[0].count("|") == len(POLICY_COLUMNS) + 2
    assert any("after 7 days" in ln for ln in lines)


def test_no_backtest_no_section() -> None:
    assert restock_policy_table({}, 7) == []
