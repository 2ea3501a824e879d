"""The latency bench's observer identifies a forecast from its key and payload head."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson

from schemas import Window
from streams.bench.latency import _forecast_head
from streams.serving.payloads import forecast_payloads

END = datetime(2011, 6, 1, 10, tzinfo=UTC)
WINDOW = Window(start=END - timedelta(hours=1), end=END)


def test_the_head_of_a_worker_payload_gives_sku_window_end_and_version() -> None:
    levels = [0.1, 0.5, 0.9]
    steps = [END + timedelta(days=d) for d in range(3)]
    q = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)
    payloads = forecast_payloads(["A1", "B2"], WINDOW, "v0007", END, levels, steps, q)
    ends: dict[bytes, datetime] = {}
    for sku, payload in zip(["A1", "B2"], payloads, strict=True):
        assert _forecast_head(sku.encode(), payload, ends) == (sku, END, "v0007")
    assert list(ends.values()) == [END]  # parsed once, then remembered


def test_any_other_layout_is_parsed_in_full() -> None:
    payload = orjson.dumps(
        {"model_version": "v0002", "sku": "C3", "window": {"end": END.isoformat(), "start": "x"}}
    )
    assert _forecast_head(b"C3", payload, {}) == ("C3", END, "v0002")
    assert _forecast_head(None, payload, {}) == ("C3", END, "v0002")
