from __future__ import annotations

import typer
from typer.testing import CliRunner

from demandcast.cli import app
from demandcast.cli_streams import register


def test_commands_are_mounted() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("worker", "replay", "check", "bench"):
        assert name in result.output
    sub = CliRunner().invoke(app, ["check", "--help"])
    assert "features" in sub.output
    bench = CliRunner().invoke(app, ["bench", "--help"])
    assert "ingest" in bench.output


def test_bench_group_is_shared_with_an_existing_one() -> None:
    host = typer.Typer()
    bench = typer.Typer()

    @bench.command("inference")
    def inference() -> None:
        """Another module's benchmark."""

    host.add_typer(bench, name="bench")
    register(host, lambda: None)  # type: ignore[arg-type, return-value]
    groups = [g.name for g in host.registered_groups]
    assert groups.count("bench") == 1
    out = CliRunner().invoke(host, ["bench", "--help"]).output
    assert "inference" in out and "ingest" in out


def test_replay_rejects_a_bad_speed(tmp_path) -> None:
    result = CliRunner().invoke(app, ["replay", str(tmp_path / "x.csv"), "--speed", "fast"])
    assert result.exit_code != 0
    assert "max" in result.output
