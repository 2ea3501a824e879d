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


# --- the demandcast processes, their metrics ports and health checks (issue 14) ----------
PROCESS_PORT_SETTING = {
    "worker": "worker_metrics_port",
    "forecaster": "forecaster_metrics_port",
    "updater": "updater_metrics_port",
}
OTHER_HEALTH_PATHS = {"prometheus": "/-/ready", "grafana": "/api/health"}


def _demandcast_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in _compose()["services"].items()
        if svc.get("command", [None])[0] == "demandcast"
    }


def test_every_process_has_a_service_and_its_command_parses() -> None:
    from typer.testing import CliRunner

    from demandcast.cli import app

    services = _demandcast_services()
    assert {svc["command"][1] for svc in services.values()} == set(PROCESS_PORT_SETTING)
    runner = CliRunner()
    for name, svc in services.items():
        result = runner.invoke(app, [*svc["command"][1:], "--help"])
        assert result.exit_code == 0, f"{name}: `{' '.join(svc['command'])}`: {result.output}"


def test_every_demandcast_setting_passed_is_a_real_setting() -> None:
    known = {f"DEMANDCAST_{name.upper()}" for name in Settings.model_fields}
    for name, svc in _compose()["services"].items():
        env = svc.get("environment") or {}
        passed = {k for k in env if k.startswith("DEMANDCAST_")}
        assert passed <= known, f"{name} passes unknown settings {passed - known}"
        if passed:
            Settings(**{k.removeprefix("DEMANDCAST_").lower(): v for k, v in env.items()})


def test_every_health_check_targets_a_real_endpoint() -> None:
    import re

    from streams.observability.health import ENDPOINTS

    for name, svc in _compose()["services"].items():
        argv = svc["healthcheck"]["test"]
        line = " ".join(argv)
        if name in OTHER_HEALTH_PATHS:
            assert OTHER_HEALTH_PATHS[name] in line, f"{name}: {line}"
            continue
        if name not in _demandcast_services():
            continue
        assert argv[:3] == ["CMD", "python", "-c"], f"{name} asks the process itself: {argv}"
        compile(argv[3], f"{name} health check", "exec")
        found = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", argv[3])
        assert found, f"{name}: no URL in {argv[3]}"
        port, path = int(found.group(1)), found.group(2)
        assert path in ENDPOINTS and path != "/metrics", f"{name} checks {path}"
        setting = PROCESS_PORT_SETTING[svc["command"][1]]
        fields = {k.removeprefix("DEMANDCAST_").lower(): v for k, v in svc["environment"].items()}
        assert getattr(Settings(**fields), setting) == port, f"{name} listens elsewhere"
        assert f"{port}:{port}" in svc.get("ports", []), f"{name} does not publish {port}"


def test_prometheus_scrapes_every_process_and_grafana_loads_the_dashboard() -> None:
    services = _compose()["services"]
    config = yaml.safe_load((REPO / "ops" / "prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    for name, svc in _demandcast_services().items():
        fields = {k.removeprefix("DEMANDCAST_").lower(): v for k, v in svc["environment"].items()}
        port = getattr(Settings(**fields), PROCESS_PORT_SETTING[svc["command"][1]])
        assert f"{name}:{port}" in targets, f"Prometheus does not scrape {name}:{port}"
    mounts = {v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert {"./ops/grafana/provisioning", "./ops/grafana/dashboards"} <= mounts
    assert "./ops/prometheus.yml" in {v.split(":")[0] for v in services["prometheus"]["volumes"]}
    for source in mounts | {"./ops/prometheus.yml"}:
        if source.startswith("./"):
            assert (REPO / source).exists(), source


def test_docker_compose_validates_the_file() -> None:
    import shutil
    import subprocess

    import pytest

    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed (scripts/setup.sh installs it)")
    done = subprocess.run(
        [exe, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
