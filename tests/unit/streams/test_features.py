from __future__ import annotations

from datetime import UTC, datetime

from schemas import OrderEvent
from streams.store.keys import METRICS, KeyLayout, Retention, epoch_ms, to_milli, version_of
from streams.store.plan import HOURLY_CONTAINER_EXTRA_S, Incoming, closable_windows, plan_batch

from .helpers import at, click, order

LAYOUT = KeyLayout("u")
RET = Retention(hourly_s=10, daily_s=20, state_s=30, dedup_s=40)


def inc(events, topic="orders", partition=0):
    return [Incoming(topic, partition, i, e, epoch_ms(e.event_time)) for i, e in enumerate(events)]


def plan_of(events, **options):
    """The plan of one batch of orders on partition 0 (grace 0, hourly windows)."""
    return plan_batch(
        inc(events),
        LAYOUT,
        RET,
        **{"watermarks": {}, "grace_ms": 0, "window_ms": 3_600_000, **options},
    )


def sums(plan):
    """Fold the plan's H, M and X operations into {(key, field): value}."""
    out: dict[tuple[str, ...], float] = {}
    for op in plan.ops:
        added, highs = [], []
        if op[0] in ("H", "M"):
            added = op[3]
        if op[0] == "M":
            highs = op[4]
        elif op[0] == "X":
            highs = op[2]
        for f, v in zip(added[::2], added[1::2], strict=True):
            out[(op[1], f)] = out.get((op[1], f), 0) + v
        for f, v in zip(highs[::2], highs[1::2], strict=True):
            out[("max", op[1], f)] = v
    return out


def test_to_milli_rounds_money_exactly() -> None:
    assert to_milli(2.55) == 2550
    assert to_milli(6 * 2.55) == 15300
    assert to_milli(0.0005) == 1
    assert to_milli(-1.2345) == -1235


def test_versions_order_by_time_then_id() -> None:
    assert version_of(5, "b") > version_of(5, "a")
    assert version_of(10, "a") > version_of(9, "z")
    assert version_of(10**12, "a") > version_of(10**11, "z")


def test_hourly_buckets_of_a_month_share_one_hash_slotted_by_utc_day_and_hour() -> None:
    last_hour = datetime(2011, 3, 31, 23, 30, tzinfo=UTC)
    late_evening = OrderEvent(
        event_id="e", event_time=last_hour, order_id="o", sku="A", quantity=2, unit_price=1.0
    )
    plan = plan_of([late_evening, order("f", 0)])  # and 1 March 09:00
    got = sums(plan)
    assert got[("u:fh:A:201103", "units:3123")] == 2
    assert got[("u:fh:A:201103", "units:0109")] == 1
    hourly = [op for op in plan.ops if op[1] == "u:fh:A:201103"]
    assert len(hourly) == 1 and hourly[0][2] == RET.hourly_s + HOURLY_CONTAINER_EXTRA_S


def test_orders_and_cancellations_aggregate_per_bucket() -> None:
    plan = plan_of(
        [
            order("1", 0, qty=6, price=2.55),
            order("2", 10, qty=2, price=3.0),
            order("3", 20, qty=-4, price=2.55),
            order("4", 70, qty=1, price=1.0),
        ]
    )
    got = sums(plan)
    h9 = h10 = "u:fh:A:201103"  # one hash for the month's hours
    assert got[(h9, "units:0109")] == 8
    assert got[(h9, "revenue_milli:0109")] == 15300 + 6000
    assert got[(h9, "lines:0109")] == 2
    assert got[(h9, "cancel_units:0109")] == 4
    assert got[(h9, "cancel_lines:0109")] == 1
    assert got[(h10, "units:0110")] == 1
    assert got[("max", h9, "price_max_milli:0109")] == 3000
    day = "u:fd:A:201103"
    assert got[(day, "units:01")] == 9
    assert got[(day, "revenue_milli:01")] == 15300 + 6000 + 1000
    assert plan.events == 4
    assert set(plan.dedup) == {"u:dd:20110301"}


def test_clicks_count_views_carts_purchases_not_removals() -> None:
    plan = plan_batch(
        inc(
            [
                click("1", 0),
                click("2", 1, action="cart"),
                click("3", 2, action="purchase"),
                click("4", 3, action="remove_from_cart"),
            ],
            topic="clicks",
        ),
        LAYOUT,
        RET,
        watermarks={},
        grace_ms=0,
        window_ms=3_600_000,
    )
    got = sums(plan)
    key = "u:fh:A:201103"
    assert (got[(key, "views:0109")], got[(key, "carts:0109")], got[(key, "purchases:0109")]) == (
        1,
        1,
        1,
    )
    assert not any(f.startswith("remove") for (_, f, *_) in [(k[0], k[1]) for k in got])
    assert plan.events == 4


def test_duplicates_inside_a_batch_and_known_ids_are_skipped() -> None:
    plan = plan_of([order("1", 0), order("1", 0), order("2", 0)], skip_ids=frozenset({"2"}))
    assert plan.events == 1
    assert plan.duplicates_in_batch == 1
    assert plan.event_ids == ["1"]
    assert sums(plan)[("u:fh:A:201103", "units:0109")] == 1


def test_late_events_are_counted_and_still_applied() -> None:
    wm = {("orders", 0): epoch_ms(at(120))}
    plan = plan_batch(
        inc([order("1", 115), order("2", 100), order("3", 30)]),
        LAYOUT,
        RET,
        watermarks=wm,
        grace_ms=10 * 60_000,
        window_ms=3_600_000,
    )
    # 115 is within the 10-minute grace; 100 and 30 are later than that
    assert plan.late == 2
    assert sums(plan)[("u:fh:A:201103", "units:0109")] == 1
    assert plan.watermarks == {}  # nothing newer than the watermark
    assert wm == {("orders", 0): epoch_ms(at(120))}  # the input is not mutated


def test_watermark_is_per_topic_partition() -> None:
    plan = plan_batch(
        inc([order("1", 0)], partition=0) + inc([order("2", 90)], partition=1),
        LAYOUT,
        RET,
        watermarks={},
        grace_ms=0,
        window_ms=3_600_000,
    )
    assert plan.watermarks == {("orders", 0): epoch_ms(at(0)), ("orders", 1): epoch_ms(at(90))}
    assert plan.windows == {("orders", 0): {epoch_ms(at(0))}, ("orders", 1): {epoch_ms(at(60))}}


def test_closable_windows_respect_grace() -> None:
    h = 3_600_000
    assert closable_windows([0, h, 2 * h], 2 * h + 5, grace_ms=10, window_ms=h) == [0]
    assert closable_windows([0, h, 2 * h], 2 * h + 10, grace_ms=10, window_ms=h) == [0, h]


def test_every_metric_is_known() -> None:
    assert len(set(METRICS)) == len(METRICS) == 9
