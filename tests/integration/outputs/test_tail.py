"""`demandcast tail` and kcat read the output topics as plain JSON."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from schemas import Forecast, decode
from streams.kafka.tail import render, tail
from streams.settings import Settings

pytestmark = pytest.mark.integration


def _forecast(sku: str, median: float) -> Forecast:
    return Forecast.model_validate(
        {
            "sku": sku,
            "window": {"start": "2011-06-01T10:00:00Z", "end": "2011-06-01T11:00:00Z"},
            "model_version": "v-test",
            "created_at": "2011-06-01T11:00:01Z",
            "freq": "D",
            "quantile_levels": [0.1, 0.5, 0.9],
            "steps": [{"timestamp": "2011-06-02T00:00:00Z", "values": [0.0, median, 2 * median]}],
        }
    )


def test_tail_filters_by_sku_and_kcat_reads_json(isolated: Settings) -> None:
    topic = isolated.topic_forecasts
    conf = isolated.kafka_client_config()
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = Producer(conf)
    sent = [_forecast(sku, m) for sku, m in (("A1", 3.0), ("B2", 5.0), ("A1", 4.0))]
    for fc in sent:
        producer.produce(topic, key=fc.sku.encode(), value=fc.to_json())
    assert producer.flush(30) == 0

    got = list(
        tail(isolated, topic, sku="A1", from_beginning=True, max_messages=2, idle_timeout_s=20)
    )
    assert sorted(decode(Forecast, m.raw).steps[0].values[1] for m in got) == [3.0, 4.0]
    assert all(m.key == "A1" for m in got)
    assert "forecast sku=A1" in render(got[0]) and "median [" in render(got[0])

    if shutil.which("kcat"):
        out = subprocess.run(
            ["kcat", "-b", isolated.kafka_bootstrap_servers, "-C", "-t", topic, "-e", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        assert sorted(line["sku"] for line in lines) == ["A1", "A1", "B2"]
