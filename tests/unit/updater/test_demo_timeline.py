"""The demo report's updater timeline: one row per decision of the run, as recorded."""

from __future__ import annotations

from demandcast.demo_report import updater_timeline


def test_one_row_per_decision_with_its_figures_and_the_versions_served() -> None:
    decisions = [
        {
            "event_time": "2011-09-08T23:59:00+00:00",
            "outcome": "challenger",
            "champion": "v0001",
            "candidate": "v0002",
            "triggers": [{"kind": "schedule"}, {"kind": "drift"}],
            "figures": {"champion": {"wql": 0.71}, "candidate": {"wql": 0.69}},
            "reason": "offline: candidate WQL 0.6900 | champion 0.7100",
        },
        {
            "event_time": "2011-09-16T00:00:00+00:00",
            "outcome": "rejected",
            "champion": "v0001",
            "candidate": "v0002",
            "triggers": [{"kind": "schedule"}],
            "figures": {"champion_live": {"wql": 0.70}, "challenger_live": {"wql": 0.72}},
            "reason": "live over 7 days",
        },
    ]
    lines = updater_timeline(decisions, {"v0001": 1200, "v0002": 0})
    rows = [ln for ln in lines if ln.startswith("| 2011")]
    assert len(rows) == 2
    assert rows[0].startswith("| 2011-09-08 | challenger | schedule,drift | v0001 | v0002 |")
    assert "champion 0.7100, candidate 0.6900" in rows[0]
    assert "0.6900 / champion" in rows[0]  # a "|" in a reason would split the row
    assert "challenger_live 0.7200" in rows[1]
    assert lines[-1] == "- forecasts served by version: v0001: 1,200, v0002: 0"


def test_a_run_without_decisions_says_so() -> None:
    lines = updater_timeline([], {})
    assert any("no decision in this run" in ln for ln in lines)
