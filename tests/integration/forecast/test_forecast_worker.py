"""The forecast worker on the live path: replay -> stream worker -> windows.closed ->
forecast worker -> forecasts / alerts, against the real Kafka and Redis."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from confluent_kafka import Producer

from models.pipeline import TransformerForecaster
from models.registry import ModelRegistry
from schemas import (
    Forecast,
    InventoryEvent,
    ModelUpdate,
    OrderEvent,
    PricingAlert,
    PromotionEvent,
    RestockAlert,
    Window,
    WindowClosed,
    decode,
)
from streams.history.replay import produce_events, replay
from streams.kafka.admin import ensure_topics
from streams.serving.lag import forecaster_lag
from streams.serving.model_holder import BASELINE_VERSION
from streams.serving.planning import WindowWork
from streams.serving.worker import ForecastWorker
from streams.settings import Settings

from ..live import consume_all, forecast_worker, running_worker, stats, wait_for

pytestmark = pytest.mark.integration

TINY_MODEL = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_model"


def _drained(settings: Settings, worker: ForecastWorker, produced: int) -> bool:
    s = stats(settings)
    done = s.get("events", 0) + s.get("duplicates", 0) + s.get("dead_letters", 0) >= produced
    return done and forecaster_lag(settings) == 0


def test_one_forecast_per_changed_sku_per_window_across_a_hot_reload(
    isolated: Settings, uci_slice: Path, tmp_path: Path
) -> None:
    s = isolated.model_copy(
        update={"model_registry": tmp_path / "models", "forecast_max_pending_windows": 10_000}
    )
    registry = ModelRegistry(s.model_registry)
    tiny = TransformerForecaster.from_pretrained(TINY_MODEL, device="cpu")
    v1 = registry.register(tiny, {"note": "first"}, promote=True)
    split = datetime(2010, 12, 2, 12, tzinfo=UTC)
    log = tmp_path / "worker.log"
    with running_worker(s, log) as proc, forecast_worker(s) as fw:
        assert fw.holder.current.version == v1
        first = replay(s, uci_slice, "uci", end=split, progress=False).events_produced
        wait_for(lambda: _drained(s, fw, first), 180, "the first half forecast", proc, log)
        v1_windows = fw.stats.windows
        assert v1_windows > 0

        v2 = registry.register(tiny, {"note": "second"}, promote=True)
        update = ModelUpdate(
            version=v2, parent_version=v1, action="promote", created_at=datetime.now(UTC)
        )
        producer = Producer(s.kafka_client_config())
        producer.produce(s.topic_model_updates, value=update.to_json())
        producer.flush(30)
        wait_for(lambda: fw.holder.current.version == v2, 60, "the hot reload")

        end = datetime(2010, 12, 4, tzinfo=UTC)
        second = replay(s, uci_slice, "uci", start=split, end=end, progress=False)
        wait_for(
            lambda: _drained(s, fw, first + second.events_produced),
            180,
            "the second half forecast",
            proc,
            log,
        )
        assert fw.stats.coalesced == 0

    closed = [decode(WindowClosed, m.value()) for m in consume_all(s, s.topic_windows_closed)]
    expected = {(w.window.end, sku) for w in closed for sku in w.skus}
    forecasts = [decode(Forecast, m.value()) for m in consume_all(s, s.topic_forecasts)]
    got = Counter((f.window.end, f.sku) for f in forecasts)
    assert set(got) == expected, "every changed SKU of every closed window, nothing else"
    assert max(got.values()) == 1, "exactly one forecast per SKU per window"
    # every window on one version, v1 windows strictly before v2 windows: none lost
    version_of: dict[datetime, str] = {}
    for f in forecasts:
        assert version_of.setdefault(f.window.end, f.model_version) == f.model_version
    ordered = [version_of[end] for end in sorted(version_of)]
    assert set(ordered) == {v1, v2}
    switch = ordered.index(v2)
    assert ordered[:switch] == [v1] * switch and ordered[switch:] == [v2] * (len(ordered) - switch)
    assert all(f.steps[0].timestamp.date() == f.window.end.date() for f in forecasts)


RESTOCK_SKU, RESTOCK_T0 = "RESTOCK-1", datetime(2011, 3, 1, 9, tzinfo=UTC)
RESTOCK_NOW = RESTOCK_T0 + timedelta(days=60)


def _ten_a_day(days: int = 60) -> list[tuple[int, object]]:
    """Orders of ten units a day for ``days`` days: the baseline expects ~10 a day."""
    events: list[tuple[int, object]] = []
    for day in range(days):
        when = RESTOCK_T0 + timedelta(days=day)
        order = OrderEvent(
            event_id=f"o{day}",
            event_time=when,
            order_id=f"{day}",
            sku=RESTOCK_SKU,
            quantity=10,
            unit_price=2.0,
        )
        events.append((int(when.timestamp() * 1000), order))
    return events


def _stock(hours: float, on_hand: int) -> tuple[int, InventoryEvent]:
    """Stock of the restock SKU ``hours`` after its last day of orders, lead time 7 days."""
    when = RESTOCK_NOW + timedelta(hours=hours)
    event = InventoryEvent(
        event_id=f"inv{hours}",
        event_time=when,
        sku=RESTOCK_SKU,
        on_hand=on_hand,
        on_order=0,
        lead_time_days=7,
    )
    return int(when.timestamp() * 1000), event


def test_restock_alert_fires_below_forecast_demand_and_clears_when_replenished(
    isolated: Settings, tmp_path: Path
) -> None:
    s = isolated.model_copy(update={"model_registry": tmp_path / "empty-registry"})
    ensure_topics(s, s.all_topics())
    orders = _ten_a_day()
    log = tmp_path / "worker.log"
    with running_worker(s, log) as proc, forecast_worker(s) as fw:
        assert fw.holder.current.version == BASELINE_VERSION
        produce_events(s, orders)  # type: ignore[arg-type]
        wait_for(lambda: _drained(s, fw, len(orders)), 120, "the orders", proc, log)
        assert fw.stats.restock_alerts == 0, "no stock known yet: nothing to alert on"
        low = [_stock(0, 20), _stock(2, 20)]  # the second closes the first one's window
        produce_events(s, low)  # type: ignore[arg-type]
        wait_for(lambda: fw.stats.restock_alerts >= 1, 120, "a restock alert", proc, log)
        produce_events(s, [_stock(4, 5000), _stock(6, 5000)])
        wait_for(lambda: fw.stats.restock_alerts >= 2, 120, "its resolution", proc, log)
        wait_for(lambda: _drained(s, fw, len(orders) + 4), 120, "the stock events", proc, log)

    alerts = [decode(RestockAlert, m.value()) for m in consume_all(s, s.topic_alerts_restock)]
    assert [a.status for a in alerts] == ["open", "resolved"]
    opened, resolved = alerts
    assert opened.sku == resolved.sku == RESTOCK_SKU
    assert opened.on_hand == 20 and opened.demand_over_lead_time > 20
    assert opened.recommended_order_qty == pytest.approx(opened.demand_over_lead_time - 20, abs=1)
    assert opened.days_of_cover < 7 and opened.expected_stockout_date is not None
    assert resolved.on_hand == 5000 and resolved.recommended_order_qty == 0


def test_a_window_older_than_one_already_forecast_moves_neither_latest_nor_alerts(
    isolated: Settings, tmp_path: Path
) -> None:
    """Windows of different input partitions reach the forecast worker in no set order
    (an inventory window of today, then an order window of two months ago): the old one
    is forecast and published, but it must not flip today's restock alert or replace the
    latest forecast."""
    s = isolated.model_copy(update={"model_registry": tmp_path / "empty-registry"})
    ensure_topics(s, s.all_topics())
    events = [*_ten_a_day(), _stock(0, 20), _stock(2, 20)]
    log = tmp_path / "worker.log"
    with running_worker(s, log) as proc:
        produce_events(s, events)  # type: ignore[arg-type]
        wait_for(lambda: stats(s).get("events", 0) >= len(events), 120, "the events", proc, log)
    today = Window(start=RESTOCK_NOW, end=RESTOCK_NOW + timedelta(hours=1))
    # the second day's window: one day of history, which forecasts less than the 20 in stock
    second_day = RESTOCK_T0 + timedelta(days=1)
    early = Window(start=second_day, end=second_day + timedelta(hours=1))
    worker = ForecastWorker(s)
    try:
        for window in (today, early):
            worker.forecast_window(WindowWork(window, {RESTOCK_SKU}, datetime.now(UTC)))
    finally:
        worker.close()  # the forecasts and alerts on the broker, the latest in Redis
    client = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    try:
        latest = decode(Forecast, client.hget(f"{worker.prefix}latest", RESTOCK_SKU) or b"")
    finally:
        client.close()
    forecasts = [decode(Forecast, m.value()) for m in consume_all(s, s.topic_forecasts)]
    assert sorted(f.window.end for f in forecasts) == [early.end, today.end], "both published"
    alerts = [decode(RestockAlert, m.value()) for m in consume_all(s, s.topic_alerts_restock)]
    assert [(a.status, a.window.end) for a in alerts] == [("open", today.end)]
    assert latest.window.end == today.end
    assert worker.stats.superseded == 1


def test_pricing_alerts_for_a_surge_and_a_promotion_lift_off_plan(
    isolated: Settings, tmp_path: Path
) -> None:
    s = isolated.model_copy(
        update={
            "model_registry": tmp_path / "empty-registry",
            "pricing_windows": 2,
            "forecast_max_pending_windows": 10_000,
        }
    )
    ensure_topics(s, s.all_topics())
    sku, t0 = "PROMO-1", datetime(2011, 3, 1, tzinfo=UTC)
    events: list[tuple[int, object]] = []

    def order(day: int, hour: int, qty: int) -> None:
        when = t0 + timedelta(days=day, hours=hour)
        events.append(
            (
                int(when.timestamp() * 1000),
                OrderEvent(
                    event_id=f"o{day}-{hour}",
                    event_time=when,
                    order_id=f"{day}{hour}",
                    sku=sku,
                    quantity=qty,
                    unit_price=2.0,
                ),
            )
        )

    for day in range(63):  # 11 units a day, 41 on the two promoted days 60 and 61
        order(day, 9, 40 if day in (60, 61) else 10)
        order(day, 12, 1)
    start = t0 + timedelta(days=60)
    promo = PromotionEvent(
        event_id="p1",
        event_time=start,
        promotion_id="SPRING",
        action="start",
        kind="price_cut",
        skus=[sku],
        discount_depth=0.3,
        planned_start=start,
        planned_end=start + timedelta(days=7),
    )
    events.append((int(start.timestamp() * 1000), promo))
    events.sort(key=lambda pair: pair[0])

    log = tmp_path / "worker.log"
    with running_worker(s, log) as proc, forecast_worker(s) as fw:
        produce_events(s, events)  # type: ignore[arg-type]
        wait_for(lambda: fw.stats.pricing_alerts >= 3, 120, "three pricing alerts", proc, log)

    alerts = [decode(PricingAlert, m.value()) for m in consume_all(s, s.topic_alerts_pricing)]
    kinds = Counter(a.kind for a in alerts)
    assert kinds == {"promo_lift_off_plan": 2, "surge": 1}
    surge = next(a for a in alerts if a.kind == "surge")
    # judged on the 2-day total (issue 16): the block holding day 60 or 61, 11 + 41 or
    # 41 + 41 units, above the 80% interval of the 2-day total
    assert surge.observed in ([52.0], [82.0]) and surge.windows == 2
    assert surge.observed[0] > surge.interval_upper[0]
    for lift in (a for a in alerts if a.kind == "promo_lift_off_plan"):
        assert lift.promotion_id == "SPRING"
        assert lift.expected_lift == 0.0  # the baseline model takes no promotion input
        assert lift.realised_lift is not None and lift.realised_lift > 1.0
        assert "SPRING" in lift.evidence
