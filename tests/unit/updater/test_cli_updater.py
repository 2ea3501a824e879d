from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from demandcast import cli_models, cli_updater
from updater.audit import AuditLog


def _app() -> typer.Typer:
    app = typer.Typer()
    cli_models.register(app, lambda: None)
    cli_updater.register(app, lambda: None)
    return app


def test_model_history_lists_every_decision(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    log.append(
        {
            "decided_at": "2026-01-01T00:00:00+00:00",
            "outcome": "rejected",
            "champion": "v0001",
            "candidate": None,
            "triggers": [{"kind": "schedule"}],
            "data": {"start": "2010-12-01", "end": "2010-12-20"},
            "reason": "candidate WQL 0.9 is not 2% below the champion's 0.8",
        }
    )
    log.append({"outcome": "promoted", "champion": "v0001", "candidate": "v0002"})
    runner = CliRunner()
    out = runner.invoke(_app(), ["model", "history", "--registry", str(tmp_path)])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    assert "rejected" in lines[0] and "trigger schedule" in lines[0] and "2010-12-01" in lines[0]
    assert "v0001 -> v0002" in lines[1]
    out = runner.invoke(_app(), ["model", "history", "--registry", str(tmp_path), "--json"])
    assert [json.loads(x)["outcome"] for x in out.stdout.splitlines()] == ["rejected", "promoted"]
    # the model group of cli_models is reused, not shadowed
    assert runner.invoke(_app(), ["model", "list", "--registry", str(tmp_path)]).exit_code == 0


def test_updater_once_refuses_an_unknown_trigger() -> None:
    out = CliRunner().invoke(_app(), ["updater", "once", "--force", "moon"])
    assert out.exit_code == 2 and "use one of" in out.output
