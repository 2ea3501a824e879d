"""Event builders and a processor wired to memory, for the broker-free tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from schemas import (
    ClickEvent,
    InventoryEvent,
    OrderEvent,
    PromotionEvent,
    WindowClosed,
    decode,
)
from streams.ingest.processor import RawRecord, StreamProcessor
from streams.settings import Settings
from streams.store.memory_sink import MemorySink

T0 = datetime(2011, 3, 1, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def order(eid: str, minutes: float, sku: str = "A", qty: int = 1, price: float = 2.5) -> OrderEvent:
    return OrderEvent(
        event_id=eid,
        event_time=at(minutes),
        order_id=f"o{eid}",
        sku=sku,
        quantity=qty,
        unit_price=price,
    )


def click(
    eid: str, minutes: float, sku: str = "A", action: str = "view", price: float | None = None
) -> ClickEvent:
    return ClickEvent(
        event_id=eid,
        event_time=at(minutes),
        action=action,
        session_id="s1",
        sku=sku,
        price=price,
    )


def inventory(eid: str, minutes: float, sku: str = "A", on_hand: int = 10) -> InventoryEvent:
    return InventoryEvent(
        event_id=eid,
        event_time=at(minutes),
        sku=sku,
        on_hand=on_hand,
        on_order=5,
        lead_time_days=3.0,
    )


def promotion(
    eid: str,
    minutes: float,
    skus: list[str],
    action: str = "start",
    depth: float = 0.2,
    days: int = 7,
) -> PromotionEvent:
    return PromotionEvent(
        event_id=eid,
        event_time=at(minutes),
        promotion_id="p1",
        action=action,
        kind="price_cut",
        skus=skus,
        discount_depth=depth,
        planned_start=at(0),
        planned_end=at(days * 1440),
    )


def settings(**overrides: object) -> Settings:
    base: dict[str, object] = {"redis_prefix": "u", "window_seconds": 3600, "grace_seconds": 600}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


class Emitted(list[tuple[str, bytes | None, bytes]]):
    async def __call__(self, messages: list[tuple[str, bytes | None, bytes]]) -> None:
        self.extend(messages)


def processor(s: Settings | None = None) -> tuple[StreamProcessor, MemorySink, Emitted]:
    s = s or settings()
    from streams.store.keys import layout_of

    sink = MemorySink(layout_of(s))
    emitted = Emitted()
    return StreamProcessor(s, sink, emitted), sink, emitted


def record(
    s: Settings,
    event: object | bytes | None,
    *,
    topic: str | None = None,
    partition: int = 0,
    offset: int = 0,
) -> RawRecord:
    if event is None or isinstance(event, bytes):
        value = event
        name = topic or s.topic_orders
    else:
        value = event.to_json()  # type: ignore[attr-defined]
        kind = event.type  # type: ignore[attr-defined]
        name = (
            topic
            or {
                "order": s.topic_orders,
                "click": s.topic_clicks,
                "promotion": s.topic_promotions,
                "inventory": s.topic_inventory,
            }[kind]
        )
    return RawRecord(name, partition, offset, b"k", value)


async def late_sku_while_publishing(
    proc: StreamProcessor, s: Settings, emitted: list[tuple[str, bytes | None, bytes]]
) -> list[WindowClosed]:
    """The window 09:00-10:00 closes with SKU A; while its ``windows.closed`` is on its way
    to the broker, a late event of SKU E for that window is applied; then one more batch.
    Returns every ``windows.closed`` emitted (``s.grace_seconds`` must be 0)."""
    release = asyncio.Event()
    real_emit = proc.emit

    async def slow(messages: list[tuple[str, bytes | None, bytes]]) -> None:
        if any(t == s.topic_windows_closed for t, _, _ in messages):
            await release.wait()
        await real_emit(messages)

    proc.emit = slow
    await proc.process([record(s, order("1", 5, sku="A"))])
    closing = await proc.prepare([record(s, order("2", 65, sku="B"))])
    late = await proc.prepare([record(s, order("3", 10, sku="E"))])  # late, for 09:00-10:00
    assert closing is not None and late is not None
    await proc.commit(closing)  # 09:00-10:00 reported with [A], on its way to the broker
    await proc.commit(late)  # E applied before the published window is forgotten
    release.set()
    await proc.flush()
    await proc.process([record(s, order("4", 70, sku="C"))])
    await proc.flush()
    return [decode(WindowClosed, v) for t, _, v in emitted if t == s.topic_windows_closed]
