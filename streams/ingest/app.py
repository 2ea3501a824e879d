"""The Faust app factory: topics and the four ingest agents.

``build_app(settings)`` returns a new ``faust.App`` each call (no module singleton). Each
input topic (``orders``, ``clicks``, ``promotions``, ``inventory``) has one agent. The app's
consumer delivers each partition's fetched records as one Faust event (a carrier, see
:mod:`streams.ingest.fastpath`); the agent hands each batch to the shared
:class:`streams.ingest.processor.StreamProcessor`, prepares the next batch while Redis applies the
current one, and acknowledges an event (manual acks, ``stream.noack()``) only after its
batch is durable in Redis, so the offsets Faust commits never run ahead of the features.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from streams.ingest.processor import Emit, Outgoing, Prepared, StreamProcessor
from streams.kafka.producer import DeliveryReport, Producer, producer_config
from streams.observability.metrics import StreamMetrics
from streams.settings import Settings
from streams.store.keys import layout_of
from streams.store.plan import parse_offsets
from streams.store.redis_sink import RedisSink
from streams.store.sink import Sink

log = logging.getLogger(__name__)


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments for the broker address and its security."""
    import ssl

    import faust

    options: dict[str, Any] = {"broker": f"kafka://{settings.kafka_bootstrap_servers}"}
    protocol = settings.kafka_security_protocol
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            )
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        options["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username or "",
            password=password.get_secret_value() if password else "",
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    elif context is not None:
        options["broker_credentials"] = faust.SSLCredentials(context)
    return options


class BrokerEmit:
    """The stream worker's own output (``windows.closed`` and the dead letters) through a
    confluent-kafka producer: idempotent, ``acks=all``, keys partitioned as Java and Faust
    clients do.

    Faust's ``Topic.send`` costs ~250 µs of the event loop's thread per message (channels,
    futures, callbacks); here a message costs a few µs to hand to librdkafka, and the wait
    for the broker's acknowledgement runs on a thread, off the event loop. A call returns
    when the broker has every message it was given, and raises if any was refused, so the
    caller (which forgets a window only afterwards) publishes it again later.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Producer | None = None

    @property
    def producer(self) -> Producer:
        """The producer, made on first use (building the app connects to nothing)."""
        if self._producer is None:
            self._producer = Producer({**producer_config(self.settings), "linger.ms": 5})
        return self._producer

    async def __call__(self, messages: list[Outgoing]) -> None:
        report = DeliveryReport()  # this call's messages only: calls may overlap
        await self.producer.send_all(messages, report)
        await self.producer.deliver_async(60.0, report)


def faust_datadir(settings: Settings) -> str:
    """Where a Faust app of these settings keeps its table directory: under the stack's
    state dir, not the working directory (Faust makes one even for the memory store)."""
    parent = settings.state_dir / "faust"
    parent.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    return str(parent / "{conf.name}-data")


def build_app(
    settings: Settings,
    *,
    sink: Sink | None = None,
    emit: Emit | None = None,
    metrics: StreamMetrics | None = None,
) -> Any:
    """A new Faust app with the ingest agents; nothing connects until it starts.

    ``sink`` defaults to the Redis feature store named by the settings and ``emit`` to a
    :class:`BrokerEmit` (DLQ and ``windows.closed``); tests pass a
    :class:`streams.store.memory_sink.MemorySink` and a list. The processor is at
    ``app.demandcast_processor``, its metrics (``metrics``, a fresh set by default) at
    ``app.demandcast_metrics`` and the partitions assigned now at
    ``app.demandcast_assigned``. ``app.demandcast_stored_offsets`` reads the offsets the
    store holds, by which the consumer seeks back after Redis lost acknowledged writes
    (:class:`streams.ingest.fastpath.BatchingConsumer`); the records read again are counted
    in the ``rewound`` statistic.
    """
    import faust

    from streams.ingest.fastpath import batching_transport

    transport_cls = batching_transport(frozenset(settings.input_topics()))

    class App(faust.App):
        """Faust's App with the partition-batching consumer (streams.ingest.fastpath)."""

        def _new_transport(self) -> Any:
            return transport_cls(self.conf.broker_consumer, self)

    app = App(
        settings.app_id,
        **faust_broker_options(settings),
        store="memory://",
        datadir=faust_datadir(settings),
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        # the input topics' queues hold partition batches (carriers), not records
        stream_buffer_maxsize=64,
        broker_max_poll_records=settings.batch_max_events,
        consumer_max_fetch_size=4 * 1024**2,  # per partition: ~20,000 UCI order events
        broker_commit_every=max(10_000, settings.batch_max_events),
        broker_session_timeout=settings.kafka_session_timeout_seconds,
        producer_acks=-1,
        consumer_group_instance_id=settings.worker_group_instance_id,
    )

    def topic(name: str) -> Any:
        return app.topic(
            name, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
        )

    if sink is None:
        sink = RedisSink(settings.redis_url, layout_of(settings), settings.redis_kwargs())
    metrics = metrics if metrics is not None else StreamMetrics()
    processor = StreamProcessor(
        settings, sink, emit if emit is not None else BrokerEmit(settings), metrics
    )
    app.demandcast_processor = processor  # type: ignore[attr-defined]
    app.demandcast_metrics = metrics  # type: ignore[attr-defined]
    assigned: set[Any] = set()
    app.demandcast_assigned = assigned  # type: ignore[attr-defined]
    store = sink

    async def stored_offsets() -> dict[tuple[str, int], int] | None:
        held = await store.offsets()
        return None if held is None else parse_offsets(held)

    async def on_rewind(reread: dict[tuple[str, int], int]) -> None:
        await store.incr_stat("rewound", sum(reread.values()))

    app.demandcast_stored_offsets = stored_offsets  # type: ignore[attr-defined]
    app.demandcast_on_rewind = on_rewind  # type: ignore[attr-defined]

    @app.on_partitions_assigned.connect
    async def reload_watermarks(_sender: Any, /, *args: Any, **_kwargs: Any) -> None:
        # another worker may have advanced the watermarks of partitions we get back
        processor.forget_watermarks()
        assigned.clear()
        assigned.update(args[0] if args else ())
        log.info("partitions assigned: %d", len(assigned))

    for kind, name in zip(
        ("orders", "clicks", "promotions", "inventory"), settings.input_topics(), strict=True
    ):
        _add_ingest_agent(app, topic(name), f"ingest-{kind}", processor, settings)
    return app


def _record_lag(app: Any, metrics: StreamMetrics, event: Any) -> None:
    """The consumer lag of the event's partition after its batch (per batch, not record):
    the high watermark of the last fetch minus the next offset."""
    message = getattr(event, "message", None)
    tp, offset = getattr(message, "tp", None), getattr(message, "offset", None)
    if tp is None or offset is None:
        return
    try:
        high = app.consumer.highwater(tp)
    except Exception:  # no fetch position yet (or a test context): nothing to report
        return
    if high is not None and high >= 0:
        metrics.set_lag(tp.topic, tp.partition, int(high) - (int(offset) + 1))


def _add_ingest_agent(
    app: Any, channel: Any, name: str, processor: StreamProcessor, settings: Settings
) -> Any:
    from streams.ingest.fastpath import records_of

    metrics = processor.metrics

    async def ingest(stream: Any) -> None:
        # Each event is a carrier of one partition's fetched records (streams.ingest.fastpath), or
        # a single record when delivered otherwise (agent.test_context()). Two batches are
        # in flight: the next one is decoded and planned while Redis applies this one. An
        # event is acked (its offsets become committable) only once its batch is durable.
        manual = stream.noack()
        inflight: asyncio.Future[None] | None = None

        async def commit_then_ack(prepared: Prepared | None, event: Any) -> None:
            if prepared is not None:
                await processor.commit(prepared)
            await manual.ack(event)
            _record_lag(app, metrics, event)

        try:
            async for event in manual.events():
                prepared = await processor.prepare(records_of(event))
                if inflight is not None:
                    await inflight
                inflight = asyncio.ensure_future(commit_then_ack(prepared, event))
                # let it run up to its first wait, i.e. hand its script to Redis, before
                # this task prepares the next batch (RedisSink.apply)
                await asyncio.sleep(0)
        finally:
            if inflight is not None and not inflight.done():
                await asyncio.shield(inflight)
            await processor.flush()

    ingest.__name__ = name.replace("-", "_")
    return app.agent(channel, name=name, concurrency=1)(ingest)


def run_worker(settings: Settings, *, loglevel: str = "warning") -> None:
    """Run the stream worker until SIGINT/SIGTERM (creates the topics first)."""
    import asyncio

    from streams.observability.health import Readiness, serve
    from streams.observability.logs import configure_logging
    from streams.stack.processes import quiet_collector

    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        pass
    import faust

    from streams.kafka.admin import ensure_topics

    ensure_topics(settings)
    metrics = StreamMetrics()
    app = build_app(settings, metrics=metrics)
    readiness = Readiness()
    assigned = app.demandcast_assigned
    readiness.add("partitions", lambda: (bool(assigned), f"{len(assigned)} assigned"))
    readiness.add(
        "consuming", lambda: (not app.rebalancing, "rebalancing" if app.rebalancing else "ok")
    )
    server = serve(
        metrics.registry,
        readiness,
        settings.worker_metrics_port,
        settings.metrics_host,
        on_ready=lambda ok: metrics.ready.labels(metrics.process).set(int(ok)),
    )
    quiet_collector()  # ingestion allocates millions of short-lived objects

    class Worker(faust.Worker):
        """Faust's worker with demandcast's log lines (text or JSON, secrets redacted)."""

        def _setup_logging(self) -> None:
            configure_logging(settings, "worker", self.loglevel or "warning")

    worker = Worker(app, loglevel=loglevel, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    finally:
        if server is not None:
            server.stop()
