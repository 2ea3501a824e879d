"""Read an output topic and render each message for a person: ``demandcast tail``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streams.exceptions import TopicError
from streams.kafka.consumer import new_consumer
from streams.settings import Settings


@dataclass(frozen=True)
class TailedMessage:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: dict[str, Any] | None
    raw: bytes


def tail(
    settings: Settings,
    topic: str,
    *,
    sku: str | None = None,
    from_beginning: bool = False,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
) -> Iterator[TailedMessage]:
    """Yield messages of ``topic`` (optionally only those keyed by ``sku``).

    Reads with a throw-away consumer group and commits nothing, so tailing never moves
    anyone's offsets. Stops after ``max_messages`` or ``idle_timeout_s`` without a message.
    """
    from confluent_kafka import KafkaError

    consumer = new_consumer(
        settings,
        f"demandcast-tail-{uuid.uuid4().hex[:8]}",
        {
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.partition.eof": False,
        },
    )
    consumer.subscribe([topic])
    seen = 0
    last = time.monotonic()
    try:
        while max_messages is None or seen < max_messages:
            msg = consumer.poll(0.5)
            if msg is None:
                if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                    return
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise TopicError(
                    f"reading {topic}: {error}; check the broker (`demandcast doctor`)"
                )
            last = time.monotonic()
            raw_key = msg.key()
            key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else raw_key
            if sku is not None and key != sku:
                continue
            raw = msg.value() or b""
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            seen += 1
            yield TailedMessage(topic, msg.partition() or 0, msg.offset() or 0, key, value, raw)
    finally:
        consumer.close()


def resolve_topic(settings: Settings, name: str) -> str:
    """The configured topic for a default name (``forecasts`` -> ``settings.topic_forecasts``)."""
    for field_name, field in Settings.model_fields.items():
        if field_name.startswith("topic_") and field.default == name:
            return str(getattr(settings, field_name))
    return name


def render(message: TailedMessage) -> str:
    """One readable line (two for forecasts) per message."""
    v = message.value
    head = f"{message.topic}[{message.partition}]@{message.offset}"
    if v is None:
        return f"{head} (not JSON) {message.raw[:200]!r}"
    if "steps" in v and "quantile_levels" in v:
        levels = v["quantile_levels"]
        mid = levels.index(0.5) if 0.5 in levels else len(levels) // 2
        medians = [round(step["values"][mid], 1) for step in v["steps"][:7]]
        lo = [round(step["values"][0], 1) for step in v["steps"][:7]]
        hi = [round(step["values"][-1], 1) for step in v["steps"][:7]]
        return (
            f"{head} forecast sku={v['sku']} window_end={v['window']['end']} "
            f"model={v['model_version']}\n"
            f"    next {len(medians)} steps  median {medians}  "
            f"q{levels[0]} {lo}  q{levels[-1]} {hi}"
        )
    if "recommended_order_qty" in v:
        return (
            f"{head} restock {v['status']} sku={v['sku']} order={v['recommended_order_qty']} "
            f"cover={v['days_of_cover']}d stockout={v.get('expected_stockout_date')} "
            f"demand_over_lead_time={v['demand_over_lead_time']} on_hand={v['on_hand']} "
            f"on_order={v['on_order']}"
        )
    if v.get("kind") in ("surge", "slump", "promo_lift_off_plan"):
        return f"{head} pricing {v['kind']} sku={v['sku']} windows={v['windows']}: {v['evidence']}"
    return f"{head} key={message.key} {json.dumps(v, separators=(',', ':'))[:400]}"
