"""The metrics server, the readiness checks and the log lines (no broker needed)."""

from __future__ import annotations

import io
import json
import logging
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.observability.health import HealthServer, Readiness, serve
from streams.observability.logs import Redactor, configure_logging, context
from streams.observability.metrics import (
    ForecastMetrics,
    StreamMetrics,
    UpdaterMetrics,
    dead_letter_reason,
    exported_metric_names,
)
from streams.settings import Settings


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_port_zero_serves_nothing() -> None:
    assert serve(StreamMetrics().registry, Readiness(), 0) is None


def test_metrics_healthz_and_readyz_on_one_port() -> None:
    metrics = ForecastMetrics()
    state = {"assigned": False}
    readiness = Readiness()
    readiness.add("partitions", lambda: (state["assigned"], "test"))
    server = HealthServer(
        metrics.registry,
        readiness,
        host="127.0.0.1",
        on_ready=lambda ok: metrics.ready.labels("forecaster").set(int(ok)),
    ).start()
    try:
        assert _get(server.port, "/healthz") == (200, "ok\n")
        status, body = _get(server.port, "/readyz")
        assert status == 503 and "partitions: not ready" in body
        state["assigned"] = True
        assert _get(server.port, "/readyz")[0] == 200
        metrics.forecasts.inc(3)
        metrics.latency.observe(0.7)
        metrics.serving("v1")
        metrics.serving("v2")
        status, text = _get(server.port, "/metrics")
        assert status == 200
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples[("demandcast_forecasts_published_total", ())] == 3
        assert samples[("demandcast_forecast_latency_seconds_count", ())] == 1
        assert samples[("demandcast_model_reloads_total", ())] == 1
        assert samples[("demandcast_serving_model_info", (("version", "v2"),))] == 1
        assert ("demandcast_serving_model_info", (("version", "v1"),)) not in samples
        assert samples[("demandcast_ready", (("process", "forecaster"),))] == 1
        assert _get(server.port, "/nope")[0] == 404
    finally:
        server.stop()


def test_registries_are_per_instance() -> None:
    a, b = StreamMetrics(), StreamMetrics()
    a.windows_closed.inc(5)
    assert b.registry.get_sample_value("demandcast_windows_closed_total") == 0
    UpdaterMetrics()  # a third set in the same interpreter: no duplicate registration


def test_exported_names_follow_the_conventions() -> None:
    names = exported_metric_names()
    assert "demandcast_consumer_lag" in names
    assert "demandcast_forecast_latency_seconds_bucket" in names
    assert "demandcast_store_script_duration_seconds_bucket" in names
    for name in names:
        assert name.startswith("demandcast_")


def test_dead_letter_reasons_are_few() -> None:
    assert dead_letter_reason("no event type is consumed from topic 'x'") == "unknown_topic"
    assert dead_letter_reason("empty message (null value)") == "null_value"
    assert dead_letter_reason("undecodable: ValueError: x") == "undecodable"
    assert dead_letter_reason("quantity: must be positive") == "schema"


SECRETS = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "PLAIN",
    "kafka_sasl_username": "svc",
    "kafka_sasl_password": "kafka-hunter2",
    "redis_password": "redis-hunter2",
    "redis_url": "redis://app:url-hunter2@redis:6379/0",
}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_in_any_log_line(fmt: str) -> None:
    settings = Settings(**SECRETS, log_format=fmt)  # type: ignore[arg-type]
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(settings, "worker", "info", stream=out)
        log = logging.getLogger("demandcast.test")
        log.info("settings: %s", settings.kafka_client_config())
        log.info("redis at %s, kwargs %s", settings.redis_url, settings.redis_kwargs())
        log.info("env %s", settings.as_env())
        log.warning("connect failed: password=%s", "kafka-hunter2")
        try:
            raise RuntimeError(f"auth failed for {settings.redis_url}")
        except RuntimeError:
            log.exception("boom")
        log.info(
            "window closed",
            extra=context(topic_partition="orders:3", window="2011-01-01T10:00:00+00:00"),
        )
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = out.getvalue()
    assert text.count("\n") >= 6
    for secret in ("kafka-hunter2", "redis-hunter2", "url-hunter2"):
        assert secret not in text, f"{secret} in the log"
    last = text.strip().splitlines()[-1]
    if fmt == "json":
        for line in text.strip().splitlines():
            if line.startswith("{"):
                json.loads(line)
        entry = json.loads(last)
        assert entry["process"] == "worker"
        assert entry["topic_partition"] == "orders:3"
        assert entry["window"].startswith("2011-01-01T10")
    else:
        assert "worker" in last and "topic_partition=orders:3" in last


def test_redactor_masks_url_passwords_it_was_not_told_about() -> None:
    redact = Redactor([])
    assert redact("kafka://u:pw123@host:9092") == "kafka://u:***@host:9092"
    assert "s3cr3t" not in redact("{'sasl.password': 's3cr3t'}")
