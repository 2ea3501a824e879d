"""docker-compose.yml: the services, their health checks and the shared settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streams.settings import Settings

REPO = Path(__file__).resolve().parents[3]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_broker_redis_and_the_two_workers() -> None:
    services = _compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["redis"]["image"].startswith("redis:")
    assert "--appendonly" in services["redis"]["command"]
    for name, command in (("stream-worker", "worker"), ("forecast-worker", "forecaster")):
        svc = services[name]
        assert svc["build"] == "."
        assert svc["command"][:2] == ["demandcast", command]
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_every_demandcast_command_in_the_file_exists() -> None:
    import typer

    from demandcast.cli import app

    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    for name, svc in _compose()["services"].items():
        for argv in (svc.get("command", []), svc.get("healthcheck", {}).get("test", [])):
            argv = [a for a in argv if a != "CMD"]
            if argv[:1] == ["demandcast"]:
                assert argv[1] in commands, f"{name} runs `demandcast {argv[1]}`: no such command"


def test_every_service_has_a_health_check() -> None:
    for name, svc in _compose()["services"].items():
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_kafka_runs_in_kraft_mode() -> None:
    env = _compose()["services"]["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"]
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env


def test_processes_share_valid_demandcast_settings() -> None:
    services = _compose()["services"]
    envs = [services[n]["environment"] for n in ("stream-worker", "forecast-worker")]
    assert envs[0] == envs[1]
    known = {f"DEMANDCAST_{name.upper()}" for name in Settings.model_fields}
    assert set(envs[0]) <= known, set(envs[0]) - known
    fields = {k.removeprefix("DEMANDCAST_").lower(): v for k, v in envs[0].items()}
    settings = Settings(**fields)
    assert settings.kafka_bootstrap_servers == "kafka:19092"
    assert (REPO / "Dockerfile").exists()
