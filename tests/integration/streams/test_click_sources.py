"""Clickstream (REES46, Retailrocket) and jsonl promotions/inventory through a live worker."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from schemas import ClickEvent
from streams.history.check import check_log
from streams.history.replay import load_events
from streams.settings import Settings
from streams.store.keys import KeyLayout
from streams.store.reader import FeatureReader

from ..live import running_worker, stats, wait_for

pytestmark = pytest.mark.integration


def write_rees46(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = datetime(2019, 10, 1, tzinfo=UTC)
    lines = [
        "event_time,event_type,product_id,category_id,category_code,brand,price,"
        "user_id,user_session"
    ]
    for i in range(rows):
        when = start + timedelta(seconds=37 * i + rng.randint(0, 30))
        kind = rng.choice(["view", "view", "view", "cart", "remove_from_cart", "purchase"])
        product = rng.choice(["1004856", "1005115", "4804056", "17300353"])
        price = rng.choice(["130.76", "489.07", "160.57", "41.44"])
        lines.append(
            f"{when:%Y-%m-%d %H:%M:%S} UTC,{kind},{product},2053013555631882655,"
            f"electronics.smartphone,samsung,{price},{541312140 + i % 9},"
            f"sess-{i % 17}"
        )
    path.write_text("\n".join(lines) + "\n")


def write_retailrocket(path: Path, rows: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    t0 = 1433221332117
    lines = ["timestamp,visitorid,event,itemid,transactionid"]
    for i in range(rows):
        kind = rng.choice(["view", "view", "addtocart", "transaction"])
        txn = str(4000 + i) if kind == "transaction" else ""
        lines.append(
            f"{t0 + i * 61_000},{257597 + i % 13},{kind},{rng.choice([355908, 248676])},{txn}"
        )
    path.write_text("\n".join(lines) + "\n")


def cli_replay(settings: Settings, path: Path, fmt: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "demandcast", "replay", str(path), "--format", fmt, "--json"],
        env=settings.as_env(),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_clickstreams_promotions_and_inventory(isolated: Settings, tmp_path: Path) -> None:
    s = isolated
    rees, rr, jl = tmp_path / "rees46.csv", tmp_path / "events.csv", tmp_path / "state.jsonl"
    write_rees46(rees, 600)
    write_retailrocket(rr, 300)
    jl.write_text(
        "\n".join(
            json.dumps(e)
            for e in [
                {
                    "type": "promotion",
                    "event_id": "p-start",
                    "event_time": "2019-10-01T00:00:00Z",
                    "promotion_id": "autumn",
                    "action": "start",
                    "kind": "price_cut",
                    "skus": ["1004856"],
                    "discount_depth": 0.15,
                    "planned_start": "2019-10-01T00:00:00Z",
                    "planned_end": "2019-10-08T00:00:00Z",
                },
                {
                    "type": "inventory",
                    "event_id": "i-2",
                    "event_time": "2019-10-01T05:00:00Z",
                    "sku": "1004856",
                    "on_hand": 40,
                    "on_order": 10,
                    "lead_time_days": 4,
                },
                {
                    "type": "inventory",
                    "event_id": "i-1",
                    "event_time": "2019-10-01T01:00:00Z",
                    "sku": "1004856",
                    "on_hand": 99,
                    "on_order": 0,
                    "lead_time_days": 4,
                },
            ]
        )
        + "\n"
    )
    produced = 0
    for path, fmt in ((rees, "rees46"), (rr, "retailrocket"), (jl, "jsonl")):
        summary = cli_replay(s, path, fmt)
        assert summary["rows_rejected"] == 0
        produced += summary["events_produced"]
    assert produced == 903
    log = tmp_path / "worker.log"
    with running_worker(s, log) as proc:
        wait_for(lambda: stats(s).get("events", 0) >= produced, 90, "all events", proc, log)
    assert stats(s)["events"] == produced
    for path, fmt in ((rees, "rees46"), (rr, "retailrocket")):
        result = check_log(s, path, fmt)
        assert result.ok, result.examples
        assert result.matching > 0
    client = redis.Redis.from_url(s.redis_url)
    try:
        reader = FeatureReader(client, KeyLayout(s.redis_prefix))
        state = reader.state(["1004856"], at=datetime(2019, 10, 2, tzinfo=UTC))["1004856"]
        clicks = reader.buckets(
            ["355908", "248676"],
            datetime(2015, 6, 2, tzinfo=UTC),
            datetime(2015, 6, 3, tzinfo=UTC),
            "D",
        )
    finally:
        client.close()
    assert state["on_hand"] == 40  # the newer inventory event wins, whatever the order
    assert [p["depth"] for p in state["promotions"]] == [0.15]
    priced = [
        (t, e.event_id, e.price)
        for t, e in load_events(rees, "rees46").events
        if isinstance(e, ClickEvent) and e.sku == "1004856"
    ]
    assert state["last_price"] == max(priced)[2]
    assert (
        clicks.metric("views").sum()
        + clicks.metric("carts").sum()
        + clicks.metric("purchases").sum()
        > 0
    )
