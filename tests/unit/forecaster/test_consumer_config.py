"""The forecast worker's consumer settings."""

from __future__ import annotations

from streams.serving.worker import forecaster_consumer_config
from streams.settings import Settings


def test_a_named_forecast_worker_joins_as_a_static_member() -> None:
    named = forecaster_consumer_config(Settings(forecaster_group_instance_id="fc-a"))
    assert named["group.instance.id"] == "fc-a"
    assert "group.instance.id" not in forecaster_consumer_config(Settings())
    assert named["auto.offset.reset"] == "earliest"
