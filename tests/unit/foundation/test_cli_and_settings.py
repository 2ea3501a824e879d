"""The CLI surface and the settings object, without services."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from demandcast.cli import app
from streams.settings import Settings, settings_table

runner = CliRunner()
REPO = Path(__file__).resolve().parents[3]


def test_help_lists_every_command_with_one_line() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in ("stack", "schemas", "settings", "doctor"):
        assert re.search(rf"│ {command}\s+\S", result.output), command


def test_schemas_export_writes_every_schema(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schemas", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.glob("*.schema.json"))
    assert "OrderEvent.schema.json" in written and "Forecast.schema.json" in written
    assert len(written) == len(result.stdout.split())


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMANDCAST_PARTITIONS", "12")
    monkeypatch.setenv("DEMANDCAST_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DEMANDCAST_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("DEMANDCAST_KAFKA_SASL_PASSWORD", "s3cret")
    settings = Settings()
    assert settings.partitions == 12
    conf = settings.kafka_client_config()
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.password"] == "s3cret"
    assert "s3cret" not in settings.model_dump_json()
    with pytest.raises(ValidationError):
        settings.partitions = 3  # type: ignore[misc]


def test_bad_settings_are_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMANDCAST_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="DEMANDCAST_KAFKA_SASL_MECHANISM"):
        Settings()
    monkeypatch.delenv("DEMANDCAST_KAFKA_SECURITY_PROTOCOL")
    monkeypatch.setenv("DEMANDCAST_PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()


def test_readme_carries_the_current_settings_table() -> None:
    readme = (REPO / "README.md").read_text()
    assert settings_table() in readme, "regenerate with `demandcast settings --table`"


def test_settings_command_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from demandcast.cli import get_settings

    get_settings.cache_clear()
    monkeypatch.setenv("DEMANDCAST_REDIS_PASSWORD", "hunter2")
    result = runner.invoke(app, ["settings"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["redis_password"] == "**********"
