"""What the chaos scenarios produce: a slice of the real log, paced so that faults land
mid-replay, and malformed messages interleaved with it."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from schemas import Event
from schemas._base import MAX_MESSAGE_BYTES
from streams.history.replay import load_events, produce_events
from streams.kafka.producer import Producer, producer_config
from streams.settings import Settings

OVERSIZED_BYTES = MAX_MESSAGE_BYTES + 4096
TOPIC_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""The chaos topics accept messages this large, so an oversized message reaches the worker
(a broker with default limits refuses it at the producer)."""

MALFORMED_KINDS = (
    "random_bytes",
    "truncated_json",
    "nan",
    "wrong_types",
    "invalid_utf8",
    "oversized",
)


def load_slice(log: Path, events: int) -> list[tuple[int, Event]]:
    """The first ``events`` events of the UCI log, in event-time order (as ``replay``)."""
    return load_events(log, "uci", limit=events).events


def chunks(events: list[tuple[int, Event]], n: int) -> list[list[tuple[int, Event]]]:
    size = max(1, -(-len(events) // max(1, n)))
    return [events[i : i + size] for i in range(0, len(events), size)]


@dataclass
class Malformed:
    """One malformed message: its kind and bytes (sent to the orders topic)."""

    kind: str
    value: bytes


def malformed_messages(
    events: list[tuple[int, Event]], n: int, rng: random.Random, oversized: int = 8
) -> list[Malformed]:
    """``n`` malformed messages made from the slice's real events: random bytes, truncated
    JSON, NaN in a number, wrong types, invalid UTF-8 and (``oversized`` of them) larger than
    the contract allows; about as many of each of the first five kinds."""
    out: list[Malformed] = []
    bodies = [e.to_json() for _, e in rng.sample(events, min(len(events), 2000))]
    for i in range(n - oversized):
        kind = MALFORMED_KINDS[i % 5]
        body = bodies[i % len(bodies)]
        doc = json.loads(body)
        if kind == "random_bytes":
            value = rng.randbytes(rng.randint(1, 300))
            if value[:1] in (b"{", b"[", b'"') or value.strip() == b"":
                value = b"\x00" + value
        elif kind == "truncated_json":
            value = body[: rng.randint(1, len(body) - 1)]
        elif kind == "nan":
            field_name = "quantity" if "quantity" in doc else "event_time"
            value = body.replace(
                f'"{field_name}":{json.dumps(doc[field_name])}'.encode(),
                f'"{field_name}":NaN'.encode(),
            )
            if b"NaN" not in value:
                value = body[:-1] + b',"quantity":NaN}'
        elif kind == "wrong_types":
            doc["quantity"] = "many"
            doc["unit_price"] = [1, 2]
            doc["sku"] = {"code": doc.get("sku")}
            value = json.dumps(doc).encode()
        else:  # invalid UTF-8 inside a string
            value = body.replace(b'"sku":"', b'"sku":"\xff\xfe', 1)
            if value == body:
                value = b'{"event_id":"\xc3\x28"}'
        out.append(Malformed(kind, value))
    for _ in range(oversized):
        body = bodies[rng.randrange(len(bodies))]
        pad = OVERSIZED_BYTES - len(body)
        out.append(Malformed("oversized", body[:-1] + b',"note":"' + b"x" * pad + b'"}'))
    rng.shuffle(out)
    return out


@dataclass
class PacedReplay:
    """Produce the slice in ``parts`` chunks ``gap_s`` apart on a thread of its own (a
    replay that lasts long enough for faults to land in it), with ``malformed`` messages
    spread over the chunks; ``done`` is set when everything is on the broker."""

    settings: Settings
    events: list[tuple[int, Event]]
    parts: int = 20
    gap_s: float = 0.5
    malformed: list[Malformed] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    started_at: float = 0.0
    error: BaseException | None = None
    produced: int = 0

    def start(self) -> PacedReplay:
        self.started_at = time.monotonic()
        threading.Thread(target=self._run, name="chaos-replay", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            parts = chunks(self.events, self.parts)
            bad = [self.malformed[i :: len(parts)] for i in range(len(parts))]
            bad_producer = (
                Producer(
                    {
                        **producer_config(self.settings),
                        "message.max.bytes": TOPIC_MAX_MESSAGE_BYTES,
                    },
                    what="malformed messages",
                )
                if self.malformed
                else None
            )
            for i, part in enumerate(parts):
                produce_events(self.settings, part)
                self.produced += len(part)
                if bad_producer is not None and bad[i]:
                    for m in bad[i]:
                        bad_producer.send(self.settings.topic_orders, m.value, b"chaos")
                    bad_producer.deliver(120)
                if i < len(parts) - 1:
                    time.sleep(self.gap_s)
        except BaseException as exc:  # reported by wait()
            self.error = exc
        finally:
            self.done.set()

    def wait(self, timeout_s: float = 600.0) -> None:
        if not self.done.wait(timeout_s):
            raise TimeoutError("the paced replay did not finish")
        if self.error is not None:
            raise self.error


def late_interleaved(
    events: list[tuple[int, Event]],
    n: int,
    rng: random.Random,
    *,
    head: float = 0.1,
    after: float = 0.5,
) -> tuple[list[tuple[int, Event]], list[tuple[int, Event]]]:
    """The slice with ``n`` of its events held back: taken from its first ``head`` fraction
    and put back at random places after its first ``after`` fraction, so that each arrives
    after events hours newer in event time (later than any grace period of minutes). The
    same events, only in another order: the consistency check still holds. Returns the
    reordered slice and the held-back events (in the order they are produced)."""
    cut = int(head * len(events))
    picked = set(rng.sample(range(cut), min(n, cut)))
    held = [e for i, e in enumerate(events) if i in picked]
    rest = [e for i, e in enumerate(events) if i not in picked]
    start = max(int(after * len(events)) - len(held), 0)
    spots = sorted(rng.randrange(start, len(rest) + 1) for _ in held)
    out: list[tuple[int, Event]] = []
    order: list[tuple[int, Event]] = []
    j = 0
    for i, e in enumerate(rest):
        while j < len(spots) and spots[j] == i:
            out.append(held[j])
            order.append(held[j])
            j += 1
        out.append(e)
    out += held[j:]
    order += held[j:]
    return out, order
