from __future__ import annotations

import asyncio
import base64
import json

import orjson

from schemas import DeadLetter, WindowClosed, decode
from streams.store.keys import KeyLayout
from streams.store.reader import FeatureReader

from .fakes import FakeRedis
from .helpers import (
    at,
    click,
    inventory,
    late_sku_while_publishing,
    order,
    processor,
    promotion,
    record,
    settings,
)


async def test_bad_input_is_dead_lettered_and_never_raises() -> None:
    s = settings()
    proc, sink, emitted = processor(s)
    bad = [
        record(s, b"\xff\xfe not json", offset=1),
        record(s, b'{"event_id": "x", "event_time": 1291192560}', offset=2),
        record(s, None, offset=3),
        record(s, click("c", 0), topic=s.topic_orders, offset=4),  # a click on orders
        record(s, order("o", 0), topic="somewhere-else", offset=5),
    ]
    await proc.process([*bad, record(s, order("ok", 0), offset=6)])
    letters = [decode(DeadLetter, v) for t, _, v in emitted if t == s.topic_dlq]
    assert [dl.offset for dl in letters] == [1, 2, 3, 4, 5]
    assert letters[0].original == b"\xff\xfe not json"
    assert letters[1].source_topic == s.topic_orders
    assert "order_id" in letters[1].reason and "Field required" in letters[1].reason
    assert "null" in letters[2].reason
    assert "type" in letters[3].reason
    assert "somewhere-else" in letters[4].reason
    # base64 (pydantic: URL-safe alphabet) in JSON, as the contract says
    assert (
        json.loads(emitted[0][2])["original"]
        == base64.urlsafe_b64encode(b"\xff\xfe not json").decode()
    )
    assert proc.counts["dead_letters"] == 5 and proc.counts["events"] == 1
    assert sink.hashes["u:stats"]["dead_letters"] == "5"
    assert sink.hashes["u:fh:A:201103"]["units:0109"] == "1"


async def test_redelivered_batch_changes_nothing() -> None:
    s = settings()
    proc, sink, _ = processor(s)
    batch = [record(s, order(str(i), i, qty=i + 1), offset=i) for i in range(5)]
    await proc.process(batch)
    before = {k: dict(v) for k, v in sink.hashes.items() if ":f" in k}
    await proc.process(batch[2:])  # partial redelivery
    await proc.process(batch)  # full redelivery
    after = {k: dict(v) for k, v in sink.hashes.items() if ":f" in k}
    assert before == after
    assert sink.hashes["u:stats"]["events"] == "5"
    assert sink.hashes["u:stats"]["duplicates"] == "8"


async def test_mixed_batch_applies_only_new_events() -> None:
    s = settings()
    proc, sink, _ = processor(s)
    await proc.process([record(s, order("1", 0, qty=2))])
    await proc.process([record(s, order("1", 0, qty=2)), record(s, order("2", 1, qty=3))])
    assert sink.hashes["u:fh:A:201103"]["units:0109"] == "5"
    assert sink.hashes["u:stats"]["duplicates"] == "1"


async def test_windows_close_after_grace_and_late_events_republish() -> None:
    s = settings(grace_seconds=600)
    proc, _, emitted = processor(s)
    await proc.process([record(s, order("1", 5, sku="A")), record(s, order("2", 30, sku="B"))])
    await proc.process([record(s, order("3", 65, sku="C"))])  # wm 10:05 < 10:00 + grace
    assert [t for t, _, _ in emitted] == []
    await proc.process([record(s, order("4", 71, sku="C"))])  # wm 10:11 >= 10:10
    closed = [decode(WindowClosed, v) for t, _, v in emitted if t == s.topic_windows_closed]
    assert len(closed) == 1
    assert closed[0].window.start == at(0) and closed[0].window.end == at(60)
    assert closed[0].skus == ["A", "B"] and closed[0].partition == 0
    # a late event (more than the grace period behind the watermark) for the closed window
    await proc.process([record(s, order("5", 10, sku="D"))])
    assert proc.counts["late"] == 1
    closed = [decode(WindowClosed, v) for t, _, v in emitted if t == s.topic_windows_closed]
    assert len(closed) == 2 and closed[1].skus == ["D"] and closed[1].window.start == at(0)


async def test_closed_windows_publish_in_the_background_once_and_survive_a_failure() -> None:
    s = settings(grace_seconds=0)
    proc, sink, emitted = processor(s)
    failures = [RuntimeError("broker away")]
    real_emit = proc.emit

    async def flaky(messages: list[tuple[str, bytes | None, bytes]]) -> None:
        if any(t == s.topic_windows_closed for t, _, _ in messages) and failures:
            raise failures.pop()
        await real_emit(messages)

    proc.emit = flaky
    await proc.process([record(s, order("1", 5, sku="A"))])
    await proc.process([record(s, order("2", 65, sku="B"))])  # closes 09:00-10:00: fails
    assert [t for t, _, _ in emitted] == []
    assert sink.zsets["u:wo:orders:0"]  # the store still has the window
    # the next two batches overlap their store updates with the background publishing
    first = await proc.prepare([record(s, order("3", 70, sku="C"))])
    second = await proc.prepare([record(s, order("4", 75, sku="D"))])
    assert first is not None and second is not None
    await proc.commit(first)  # reports 09:00-10:00 again
    await proc.commit(second)  # ... and again, while it is on its way: not handed twice
    await proc.flush()
    closed = [decode(WindowClosed, v) for t, _, v in emitted if t == s.topic_windows_closed]
    assert [(c.window.start, c.skus) for c in closed] == [(at(0), ["A"])]
    assert str(int(at(0).timestamp() * 1000)) not in sink.zsets["u:wo:orders:0"]  # forgotten


async def test_a_late_sku_applied_while_its_window_is_published_is_published_after() -> None:
    s = settings(grace_seconds=0)
    proc, sink, emitted = processor(s)
    closed = await late_sku_while_publishing(proc, s, emitted)
    assert [(c.window.start, c.skus) for c in closed] == [(at(0), ["A"]), (at(0), ["E"])]
    start = int(at(0).timestamp() * 1000)
    assert sink.layout.window_skus(s.topic_orders, 0, start) not in sink.sets  # forgotten
    assert str(start) not in sink.zsets[sink.layout.open_windows(s.topic_orders, 0)]


async def test_watermarks_survive_a_restart_through_the_store() -> None:
    s = settings()
    proc, sink, _ = processor(s)
    await proc.process([record(s, order("1", 120))])
    from streams.ingest.processor import StreamProcessor

    restarted = StreamProcessor(s, sink, proc.emit)
    await restarted.process([record(s, order("2", 0))])
    assert restarted.counts["late"] == 1


async def test_state_is_guarded_by_event_time() -> None:
    s = settings()
    proc, sink, _ = processor(s)
    await proc.process(
        [record(s, order("new", 50, price=3.0)), record(s, inventory("inv2", 40, on_hand=7))]
    )
    await proc.process(
        [
            record(s, order("old", 10, price=9.0)),
            record(s, inventory("inv1", 20, on_hand=99)),
            record(s, click("c", 45, price=8.0)),
        ]
    )  # older than the order
    state = sink.hashes["u:s:A"]
    assert state["last_price"] == "3.0"
    assert state["on_hand"] == "7"


async def test_reader_returns_dense_arrays_and_state() -> None:
    s = settings()
    proc, sink, _ = processor(s)
    await proc.process(
        [
            record(s, order("1", 0, sku="A", qty=2, price=1.5)),
            record(s, order("2", 125, sku="A", qty=1, price=2.0)),
            record(s, click("3", 61, sku="B", action="cart")),
            record(s, promotion("4", 0, ["A"], depth=0.25)),
            record(s, inventory("5", 0, sku="B", on_hand=3)),
        ]
    )
    reader = FeatureReader(FakeRedis(sink), KeyLayout("u"))
    got = reader.buckets(["A", "B", "Z"], at(0), at(180), "h")
    assert got.values.shape == (3, 3, 9)
    assert got.metric("units").tolist() == [[2, 0, 1], [0, 0, 0], [0, 0, 0]]
    assert got.metric("revenue_milli").tolist()[0] == [3.0, 0.0, 2.0]
    assert got.metric("carts").tolist()[1] == [0, 1, 0]
    assert str(got.periods[1]) == "2011-03-01T10:00:00.000"
    daily = reader.buckets(["A"], at(-600), at(1440), "D", ("units", "price_max_milli"))
    # [Feb 28 23:00, Mar 2 09:00) at daily frequency: Feb 28, Mar 1, Mar 2
    assert daily.values.shape == (1, 3, 2)
    assert daily.values[0].tolist() == [[0.0, 0.0], [3.0, 2.0], [0.0, 0.0]]
    state = reader.state(["A", "B"], at=at(200), ref_price_days=2)
    assert state["A"]["last_price"] == 2.0 and state["A"]["ref_price"] == 2.0
    assert [p["depth"] for p in state["A"]["promotions"]] == [0.25]
    assert state["B"]["on_hand"] == 3 and state["B"]["promotions"] == []
    ended = reader.state(["A"], at=at(200 + 8 * 1440))["A"]["promotions"]
    assert ended == []


async def test_promotion_end_deactivates() -> None:
    s = settings()
    proc, sink, _ = processor(s)
    await proc.process([record(s, promotion("s", 0, ["A"]))])
    await proc.process([record(s, promotion("e", 30, ["A"], action="end"))])
    reader = FeatureReader(FakeRedis(sink), KeyLayout("u"))
    assert reader.state(["A"], at=at(60))["A"]["promotions"] == []
    assert orjson.loads(orjson.dumps(sink.hashes["u:pr:p1"]))["action"] == "end"


async def test_a_window_reported_by_a_script_that_ran_before_its_publication_is_not_repeated() -> (
    None
):
    """The next batch's script can run (and report a window still due) before the window's
    publication forgets it, while its answer is handled only afterwards: that report is
    stale and the window goes out once."""
    s = settings(grace_seconds=0)
    proc, sink, emitted = processor(s)
    real_apply = sink.apply
    calls = [0]

    async def answer_late(args):
        calls[0] += 1
        answer = await real_apply(args)  # the script runs now
        if calls[0] == 2:
            await asyncio.sleep(0.05)  # ... its answer arrives after the publication
        return answer

    sink.apply = answer_late  # type: ignore[method-assign]
    first = await proc.prepare(
        [record(s, order("1", 5), offset=0), record(s, order("2", 65), offset=1)]
    )
    second = await proc.prepare([record(s, order("3", 66), offset=2)])
    assert first is not None and second is not None
    await proc.commit(first)  # window 09:00-10:00 due: its publication starts
    await proc.commit(second)
    await proc.flush()
    closed = [decode(WindowClosed, v) for t, _, v in emitted if t == s.topic_windows_closed]
    assert [w.window.start for w in closed] == [at(0)]
    # a late event for that window after it was forgotten is published again, as documented
    late = await proc.prepare([record(s, order("4", 10, sku="Z"), offset=3)])
    assert late is not None
    await proc.commit(late)
    await proc.flush()
    closed = [decode(WindowClosed, v) for t, _, v in emitted if t == s.topic_windows_closed]
    assert [w.skus for w in closed] == [["A"], ["Z"]]
