"""The Grafana dashboard: valid JSON of Grafana's dashboard model, every query on a metric
the processes export (names from streams.observability.metrics, not a hand list)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from streams.observability.metrics import exported_metric_names

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "ops" / "grafana" / "dashboards" / "demandcast.json"
METRIC = re.compile(r"\b(demandcast_[a-z0-9_]+)\b")


def _dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def test_dashboard_has_grafana_model_fields() -> None:
    dash = _dashboard()
    assert dash["uid"] and dash["title"] == "demandcast"
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 30
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids are unique"
    for p in panels:
        assert p["type"] in {"timeseries", "stat", "gauge", "table", "bargauge"}
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        assert p["targets"], f"{p['title']} has no query"


def test_every_panel_queries_exported_metrics() -> None:
    exported = exported_metric_names()
    used: set[str] = set()
    for panel in _dashboard()["panels"]:
        for target in panel["targets"]:
            names = set(METRIC.findall(target["expr"]))
            assert names, f"{panel['title']}: {target['expr']} names no demandcast metric"
            unknown = names - exported
            assert not unknown, f"{panel['title']} queries {unknown}: not exported"
            used |= names
            if "histogram_quantile" in target["expr"]:
                assert all(n.endswith("_bucket") for n in names)
    wanted = {
        "demandcast_consumer_lag",
        "demandcast_events_consumed_total",
        "demandcast_forecast_latency_seconds_bucket",
        "demandcast_alerts_total",
        "demandcast_serving_model_info",
    }
    assert wanted <= used, f"the dashboard misses {wanted - used}"


def test_panels_use_the_provisioned_datasource() -> None:
    provisioning = REPO / "ops" / "grafana" / "provisioning"
    ds = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    uids = {d["uid"] for d in ds["datasources"]}
    for panel in _dashboard()["panels"]:
        assert panel["datasource"]["uid"] in uids
    providers = yaml.safe_load((provisioning / "dashboards" / "demandcast.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_every_exported_metric_is_documented() -> None:
    from streams.observability.metrics import PROCESS_METRICS

    doc = (REPO / "docs" / "operating.md").read_text()
    for cls in PROCESS_METRICS:
        for family in cls().registry.collect():
            name = family.name + ("_total" if family.type == "counter" else "")
            assert f"`{name}`" in doc, f"{name} is missing from docs/operating.md"
