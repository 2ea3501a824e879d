"""The Faust app and its agents, without a broker (``agent.test_context()``)."""

from __future__ import annotations

import asyncio

from streams.ingest.app import build_app
from streams.store.keys import layout_of
from streams.store.memory_sink import MemorySink

from .helpers import Emitted, order, settings


def test_build_app_declares_the_agents_and_topics() -> None:
    s = settings(app_id="unit-app", partitions=3)
    app = build_app(s, sink=MemorySink(layout_of(s)))
    names = sorted(app.agents)
    assert names == ["ingest-clicks", "ingest-inventory", "ingest-orders", "ingest-promotions"]
    topics = {next(iter(a.channel.topics)) for a in app.agents.values()}
    assert topics == set(s.input_topics())
    assert all(a.channel.partitions == 3 for a in app.agents.values())
    other = build_app(s, sink=MemorySink(layout_of(s)))
    assert other is not app  # a factory, not a singleton


async def test_agent_events_reach_the_store() -> None:
    s = settings(app_id="unit-app2", batch_max_events=3)
    sink = MemorySink(layout_of(s))
    emitted = Emitted()
    app = build_app(s, sink=sink, emit=emitted)
    agent = app.agents["ingest-orders"]
    async with agent.test_context() as ctx:
        for i in range(7):
            await ctx.put(order(f"{i}", i, qty=1).to_json(), key=b"A")
        await ctx.put(b"not json", key=b"A")
        for _ in range(100):
            if app.demandcast_processor.counts["events"] == 7:
                break
            await asyncio.sleep(0.02)
    assert app.demandcast_processor.counts["events"] == 7
    assert sink.hashes["u:fh:A:201103"]["units:0109"] == "7"
    # plain (non-carrier) events are batches of one; the dead letter's batch records
    # its consumed offset (docs/feature-store.md, "Offsets")
    assert sink.calls == 8
    assert sink.hashes["u:off"] == {f"{s.topic_orders}:0": "8"}
    assert [t for t, _, _ in emitted] == [s.topic_dlq]


def test_a_named_worker_joins_its_group_as_a_static_member() -> None:
    named = settings(app_id="unit-app3", worker_group_instance_id="worker-a")
    assert build_app(named).conf.consumer_group_instance_id == "worker-a"
    assert build_app(settings(app_id="unit-app4")).conf.consumer_group_instance_id is None
