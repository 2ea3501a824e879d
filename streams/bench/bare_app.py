"""The bare Faust agent of ``demandcast bench ingest``: what Faust alone costs per event.

``python -m streams.bench.bare_app N OUT`` runs a Faust worker (settings from the
environment) whose one agent on ``orders`` only takes batches of events
(``take_events``) and parses their JSON. Once it has read ``N`` events it writes
``{"count", "seconds"}`` (first batch to the ``N``-th event) to the file ``OUT``, atomically,
and keeps running until it is stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any


def main(n: int, out: str) -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    import faust
    import orjson

    from streams.ingest.app import faust_broker_options, faust_datadir
    from streams.settings import Settings

    s = Settings()
    app = faust.App(
        s.app_id + "-bare",
        **faust_broker_options(s),
        store="memory://",
        datadir=faust_datadir(s),
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=max(4096, 2 * s.batch_max_events),
    )
    topic = app.topic(s.topic_orders, key_serializer="raw", value_serializer="raw")
    state: dict[str, Any] = {"count": 0, "first": None}

    @app.agent(topic)
    async def bare(stream: Any) -> None:
        loads = orjson.loads
        async for events in stream.take_events(s.batch_max_events, within=0.2):
            if state["first"] is None:
                state["first"] = time.time()
            for e in events:
                loads(e.message.value)
            state["count"] += len(events)
            if state["count"] >= n:
                with open(out + ".tmp", "w") as fh:
                    json.dump(
                        {"count": state["count"], "seconds": time.time() - state["first"]}, fh
                    )
                os.replace(out + ".tmp", out)

    faust.Worker(app, loglevel="warning", redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
