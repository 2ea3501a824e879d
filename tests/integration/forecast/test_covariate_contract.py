"""One definition of every covariate: the known covariates the forecast worker builds from
Redis equal the ones `dataset from-log` builds from the raw log, for the same SKUs and days.

A slice of the real UCI log goes through the live stream worker into Redis; the forecast
worker's own input path (``InputReader`` + ``model_inputs``) reads it back for an origin,
and the table builder (``models.data.uci_to_long``) reads the same slice from the file.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from models.data import read_uci_log, uci_to_long
from schemas import Window
from streams.history.replay import replay
from streams.serving.inputs import InputReader, model_inputs
from streams.serving.model_holder import ServingModel
from streams.serving.planning import WindowWork
from streams.settings import Settings
from streams.store.keys import layout_of
from streams.store.reader import FeatureReader

from ..live import running_worker, stats, wait_for

pytestmark = pytest.mark.integration

CONTEXT = 5


def test_the_worker_builds_the_covariates_the_table_builder_makes(
    isolated: Settings, uci_slice: Path, tmp_path: Path
) -> None:
    table = uci_to_long(read_uci_log(uci_slice), "D")
    days = sorted(table["timestamp"].unique())
    origin = pd.Timestamp(days[-1])  # the slice's last (partial) day is after the context
    log = tmp_path / "worker.log"
    with running_worker(isolated, log) as proc:
        produced = replay(isolated, uci_slice, "uci", progress=False).events_produced
        wait_for(
            lambda: sum(stats(isolated).get(k, 0) for k in ("events", "duplicates")) >= produced,
            180,
            "the slice in Redis",
            proc,
            log,
        )
    in_context = table[
        (table["timestamp"] >= origin - pd.Timedelta(days=CONTEXT)) & (table["timestamp"] < origin)
    ]
    skus = sorted(in_context["series_id"].unique())
    model = ServingModel(
        version="contract",
        forecaster=None,
        quantile_levels=[0.5],
        context_length=CONTEXT,
        horizon=7,
        known=("price_rel",),
    )
    end = origin.to_pydatetime().replace(tzinfo=UTC)
    work = WindowWork(Window(start=end - timedelta(hours=1), end=end), set(skus), end)
    client = redis.Redis.from_url(isolated.redis_url, **isolated.redis_kwargs())
    try:
        layout = layout_of(isolated)
        batch = InputReader(FeatureReader(client, layout), client, layout).read(model, work, skus)
    finally:
        client.close()
    served = model_inputs(model, work, skus, batch).panel.known["price_rel"]

    expected = in_context.pivot(index="series_id", columns="timestamp", values="price_rel")
    expected = expected.reindex(
        index=skus, columns=pd.date_range(end=origin, periods=CONTEXT + 1)[:-1]
    )
    present = expected.notna().to_numpy()  # days from a SKU's first sale on
    assert present.sum() > 1000
    # 1.5e-4: the store keeps money in thousandths per line, the table exact; price_rel
    # has 4 decimals, so the two may differ by one unit of the last
    diff = np.abs(served[present] - expected.to_numpy()[present])
    assert diff.max() <= 1.5e-4, f"{(diff > 1.5e-4).sum()} of {present.sum()} SKU-days differ"
    moved = np.abs(expected.to_numpy()[present] - 1.0) > 1e-3
    assert moved.mean() > 0.05, "the comparison must cover prices away from the reference"
