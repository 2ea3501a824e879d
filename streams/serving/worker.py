"""The forecast worker: fresh forecasts for every closed window, restock and pricing alerts.

A process of its own (``demandcast forecaster``) so the model never blocks stream
consumption. Each loop it

1. takes what is pending on ``windows.closed`` (and ``model.updates``);
2. merges the messages of one window (one per input partition) and, when more windows
   are pending than ``forecast_max_pending_windows``, coalesces them into the newest
   (its features are the freshest) and counts the windows skipped;
3. reads the changed SKUs' daily history in one batched Redis round trip;
4. runs the serving model in batches (GPU when present) and publishes one ``Forecast`` per
   SKU to ``forecasts`` keyed by SKU, keeping the latest per SKU in Redis too;
5. evaluates restock and pricing rules and publishes their alerts;
   the messages of different input partitions arrive in no particular order, so a SKU's
   window older than one already forecast for it (``{prefix}:fc:newest``) still gets its
   ``Forecast`` but neither replaces the latest one nor moves its alerts back in time;
6. commits the consumed offsets only after everything is published (at least once).

The serving model is held by :class:`~streams.serving.model_holder.ModelHolder`: a
``ModelUpdate`` or a changed champion pointer loads the new version on a background thread
and swaps it in atomically; a batch in flight finishes on the model it started with, and a
version that fails to load leaves the old one serving.

The parts: :mod:`streams.serving.planning` (steps 2 and the SKU batches),
:mod:`streams.serving.inputs` (3 and the model inputs), :mod:`streams.serving.payloads`
(4), :mod:`streams.alerts.orchestration` (5); this module runs the loop. Its keys in Redis
are named by :class:`streams.store.keys.KeyLayout` (``{prefix}:fc:*``).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np

from schemas import ModelUpdate, SchemaError, WindowClosed, decode
from streams.alerts.orchestration import AlertEvaluator
from streams.kafka.consumer import new_consumer, take
from streams.kafka.producer import Producer
from streams.observability.health import Readiness, serve
from streams.observability.logs import context
from streams.observability.metrics import ForecastMetrics
from streams.serving.inputs import (
    BatchInputs,
    ForecastBatch,
    InputReader,
    model_inputs,
    without_promotions,
)
from streams.serving.lag import forecaster_group
from streams.serving.model_holder import ModelHolder, ServingModel, ShadowHolder, load_version
from streams.serving.payloads import forecast_payloads
from streams.serving.planning import DAY, WindowWork, backfill_filter, batch_plan, plan_windows
from streams.settings import Settings

log = logging.getLogger(__name__)

SETTLE_AFTER_S = 2.0
"""The longest the worker goes on forecasting without settling (flush and commit)."""


def forecaster_consumer_config(settings: Settings) -> dict[str, Any]:
    """The forecast worker's consumer settings beyond :func:`new_consumer`'s: from the
    start of ``windows.closed``, a long poll interval (a window can take a while), and a
    static member name when one is set (``forecaster_group_instance_id``)."""
    config: dict[str, Any] = {"auto.offset.reset": "earliest", "max.poll.interval.ms": 600_000}
    if settings.forecaster_group_instance_id:
        config["group.instance.id"] = settings.forecaster_group_instance_id
    return config


@dataclass
class WorkerStats:
    closes: int = 0
    """``windows.closed`` messages consumed (one per window per input partition)."""
    skipped: int = 0
    """Messages of windows ending at or before ``forecast_after`` (a backfill)."""
    windows: int = 0
    forecasts: int = 0
    coalesced: int = 0
    restock_alerts: int = 0
    pricing_alerts: int = 0
    shadow_forecasts: int = 0
    """Forecasts of the model in shadow, on ``forecasts.shadow``."""
    superseded: int = 0
    """Forecasts of a SKU for a window older than one already forecast for it: published,
    but kept out of the latest forecasts and the alert rules."""
    last_latency_s: float = 0.0
    waited_s: float = 0.0
    """Summed over windows: from a window's ``closed_at`` to the start of its forecast."""
    busy_s: float = 0.0
    """Seconds spent forecasting (reading features, the model, publishing)."""
    phases: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            ("read", "inputs", "model", "publish", "alerts", "shadow"), 0.0
        )
    )
    """Of ``busy_s``: seconds waiting for the store (its reads run a batch ahead, on a
    thread, so only the first batch of a window waits for all of its read), building the
    model inputs, in the model, building and publishing the forecasts, evaluating the
    alert rules, and forecasting with the model in shadow."""

    def as_dict(self) -> dict[str, float | int]:
        return {
            **{f"{name}_s": round(value, 4) for name, value in self.phases.items()},
            "closes": self.closes,
            "skipped": self.skipped,
            "windows": self.windows,
            "forecasts": self.forecasts,
            "coalesced": self.coalesced,
            "restock_alerts": self.restock_alerts,
            "pricing_alerts": self.pricing_alerts,
            "superseded": self.superseded,
            "shadow_forecasts": self.shadow_forecasts,
            "last_latency_s": round(self.last_latency_s, 4),
            "waited_s": round(self.waited_s, 4),
            "busy_s": round(self.busy_s, 4),
        }


class ForecastWorker:
    """Consume ``windows.closed``, publish forecasts and alerts (see the module docstring)."""

    def __init__(self, settings: Settings, holder: ModelHolder | None = None) -> None:
        import redis
        import torch

        from streams.kafka.admin import ensure_topics
        from streams.store.clients import riding_out
        from streams.store.keys import layout_of
        from streams.store.reader import FeatureReader

        self.settings = settings
        if settings.forecast_cpu_threads:
            # oversubscribed OpenMP threads spin against the stream worker: 5x slower here
            torch.set_num_threads(settings.forecast_cpu_threads)
        self.holder = holder or ModelHolder(
            settings.model_registry,
            settings.device,
            loader=partial(load_version, compile=settings.model_compile),
        )
        self._shadow_refused: tuple[str, str] | None = None
        """The (shadow, serving) versions last found to need different inputs (logged)."""
        self.shadow = ShadowHolder(
            settings.model_registry,
            settings.device,
            loader=partial(load_version, compile=settings.model_compile),
        )
        # every read and write retried through a Redis restart (streams.store.clients)
        self.redis = redis.Redis.from_url(
            settings.redis_url, **settings.redis_kwargs(), **riding_out()
        )
        self.layout = layout_of(settings)
        self.prefix = self.layout.forecaster_prefix
        """Where the worker's own keys start (``{prefix}:fc:``; see :class:`KeyLayout`)."""
        self.reader = FeatureReader(self.redis, self.layout)
        self.inputs = InputReader(self.reader, self.redis, self.layout)
        ensure_topics(
            settings,
            (
                settings.topic_windows_closed,
                settings.topic_model_updates,
                settings.topic_forecasts,
                settings.topic_forecasts_shadow,
                settings.topic_alerts_restock,
                settings.topic_alerts_pricing,
            ),
        )
        self.consumer = new_consumer(
            settings, forecaster_group(settings), forecaster_consumer_config(settings)
        )
        self._assigned: set[tuple[str, int]] = set()
        self.consumer.subscribe(
            [settings.topic_windows_closed, settings.topic_model_updates],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
        )
        self.producer = Producer(
            {
                **settings.kafka_client_config(),
                "enable.idempotence": True,
                "linger.ms": 5,
                "compression.type": "lz4",
            },
            what="forecasts and alerts",
        )
        self.alerts = AlertEvaluator(settings, self.layout, self._publish)
        self.stats = WorkerStats()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="latest-forecasts")
        self._reader_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        self._unsettled_since: float | None = None
        """When the oldest work not yet settled (acknowledged and committed) was taken."""
        self._writes: list[Future[Any]] = []
        self.metrics = ForecastMetrics()
        """Prometheus metrics (:mod:`streams.observability.metrics`), per window and batch."""
        self.metrics.serving(self.holder.current.version)
        self._stepped_at = time.monotonic()
        self.readiness = Readiness()
        self.readiness.add("model", lambda: (True, self.holder.current.version))
        self.readiness.add(
            "partitions", lambda: (bool(self._assigned), f"{len(self._assigned)} assigned")
        )
        self.readiness.add("consuming", self._consuming)
        self.health = serve(
            self.metrics.registry,
            self.readiness,
            settings.forecaster_metrics_port,
            settings.metrics_host,
            on_ready=lambda ok: self.metrics.ready.labels(self.metrics.process).set(int(ok)),
        )
        """``/metrics``, ``/healthz``, ``/readyz`` (None when the port setting is 0)."""

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        log.info("partitions assigned: %d", len(self._assigned))

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        self._assigned -= {(tp.topic, tp.partition) for tp in partitions}

    def _consuming(self) -> tuple[bool, str]:
        """The loop polled in the last few minutes (a window's forecast takes seconds)."""
        ago = time.monotonic() - self._stepped_at
        return ago < 300.0, f"last poll {ago:.1f}s ago"

    def _record_lag(self, messages: list[Any]) -> None:
        """The lag of each partition the messages came from, per step: the high watermark
        of the last fetch (cached by the client, no broker call) minus the next offset."""
        from confluent_kafka import TopicPartition

        last: dict[tuple[str, int], int] = {}
        for msg in messages:
            if msg.error() is None:
                last[(msg.topic(), msg.partition())] = msg.offset()
        for (topic, partition), offset in last.items():
            try:
                _, high = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except Exception:  # no fetch yet: nothing to report
                continue
            if high is not None and high >= 0:
                self.metrics.set_lag(topic, partition, high - (offset + 1))

    def _finish_writes(self) -> None:
        """Wait for the background Redis writes (they must land before offsets commit)."""
        writes, self._writes = self._writes, []
        for write in writes:
            write.result()

    def close(self) -> None:
        if self._unsettled_since is not None:
            self.settle()
        self._finish_writes()
        self._writer.shutdown()
        self._reader_thread.shutdown()
        self.producer.flush(30)
        self.consumer.close()
        self.redis.close()
        if self.health is not None:
            self.health.stop()

    def run(self, stop: threading.Event | None = None, idle_exit_s: float | None = None) -> None:
        """Loop until ``stop`` is set (or ``idle_exit_s`` passes with nothing to do)."""
        idle_since = time.monotonic()
        while stop is None or not stop.is_set():
            done = self.step()
            if done:
                idle_since = time.monotonic()
            elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                return

    def step(self, max_messages: int = 2000, timeout_s: float = 0.5) -> int:
        """Take what is pending, forecast it, publish; return the windows forecast.

        Offsets are committed only after everything published before is acknowledged
        (:meth:`settle`). That happens when nothing more is pending, or at least every
        ``SETTLE_AFTER_S``, not after every step: the next window's forecasts do not wait
        for the broker's acknowledgements of the last one's.
        """
        self.holder.check_pointer()
        self.shadow.check()
        self._stepped_at = time.monotonic()
        metrics = self.metrics
        metrics.serving(self.holder.current.version)  # a changed version: a hot reload
        unsettled = self._unsettled_since is not None
        messages = take(
            self.consumer, max_messages, min(timeout_s, 0.05) if unsettled else timeout_s
        )
        if messages:
            self._record_lag(messages)
        if not messages:
            if unsettled:
                self.settle()
            return 0
        closes, consumed = self._decode(messages)
        kept = backfill_filter(closes, self.settings.forecast_after)
        self.stats.skipped += len(closes) - len(kept)
        closes = kept
        works, coalesced = plan_windows(closes, self.settings.forecast_max_pending_windows)
        self.stats.closes += len(closes)
        self.stats.coalesced += coalesced
        metrics.closes.inc(len(closes))
        if coalesced:
            metrics.coalesced.inc(coalesced)
            log.info("%d pending windows coalesced into the newest", coalesced)
        for work in works:
            self.forecast_window(work)
        if consumed and self._unsettled_since is None:
            self._unsettled_since = time.monotonic()
        since = self._unsettled_since
        if since is not None and time.monotonic() - since > SETTLE_AFTER_S:
            self.settle()
        return len(works)

    def _decode(self, messages: list[Any]) -> tuple[list[WindowClosed], int]:
        """The ``WindowClosed`` messages among ``messages`` and how many were consumed; a
        ``ModelUpdate`` that promotes or rolls back requests that version's reload."""
        closes: list[WindowClosed] = []
        consumed = 0
        for msg in messages:
            if msg.error() is not None:
                log.warning("consume error: %s", msg.error())
                continue
            consumed += 1
            raw = msg.value() or b""
            try:
                if msg.topic() == self.settings.topic_model_updates:
                    update = decode(ModelUpdate, raw)
                    self.metrics.model_updates.labels(update.action).inc()
                    log.info(
                        "model update: %s of %s",
                        update.action,
                        update.version,
                        extra=context(version=update.version),
                    )
                    if update.action in ("promote", "rollback"):
                        self.holder.request(update.version)
                else:
                    closes.append(decode(WindowClosed, raw))
            except SchemaError as exc:
                log.warning("skipping an undecodable message on %s: %s", msg.topic(), exc)
        return closes, consumed

    def settle(self) -> None:
        """Wait until every forecast and alert so far is on the broker and the latest
        forecasts are in Redis, then commit the consumed offsets (at least once)."""
        self._finish_writes()
        self.producer.flush(60)
        failed = self.producer.report.take()
        if failed:  # reported, not retried: the offsets are committed all the same
            log.error("%d forecasts and alerts failed delivery; first: %s", len(failed), failed[0])
        self.consumer.commit(asynchronous=False)
        self.redis.hset(self.layout.forecaster_stats, mapping=dict(self.stats.as_dict()))  # type: ignore[arg-type]
        self._unsettled_since = None

    # --- one window ------------------------------------------------------------------
    def forecast_window(self, work: WindowWork) -> int:
        """Forecast every SKU of ``work``, publish, evaluate alerts; return the forecasts."""
        started = time.monotonic()
        waited = max(0.0, (datetime.now(UTC) - work.closed_at).total_seconds())
        self.stats.waited_s += waited
        model = self.holder.current  # one read: a reload meanwhile does not affect this batch
        skus = sorted(work.skus)
        if not skus:  # nothing changed: nothing to forecast, the window still counts
            self.stats.windows += 1
            self.metrics.windows.inc()
            return 0
        forecasts = 0
        batches = batch_plan(skus, self.settings.forecast_batch_skus)
        # the store is read one batch ahead, on a thread: Redis and the model overlap
        read = self.inputs.read
        ahead = self._reader_thread.submit(read, model, work, batches[0])
        for i, batch in enumerate(batches):
            t0 = time.perf_counter()
            inputs = ahead.result()
            self.stats.phases["read"] += time.perf_counter() - t0
            if i + 1 < len(batches):
                ahead = self._reader_thread.submit(read, model, work, batches[i + 1])
            forecasts += self._forecast_skus(model, work, batch, inputs)
        latency = (datetime.now(UTC) - work.closed_at).total_seconds()
        log.info(
            "window ending %s: %d SKUs forecast %.3fs after it closed (started after %.3fs)",
            work.window.end.isoformat(),
            len(skus),
            latency,
            waited,
            extra=context(
                window=work.window.start.isoformat(), sku_count=len(skus), version=model.version
            ),
        )
        self.stats.busy_s += time.monotonic() - started
        self.stats.windows += 1
        self.stats.last_latency_s = latency
        self.metrics.windows.inc()
        self.metrics.latency.observe(latency)
        return forecasts

    def _forecast_skus(
        self, model: ServingModel, work: WindowWork, skus: list[str], inputs: BatchInputs
    ) -> int:
        """One batch: model inputs, the model, the forecasts published, the alerts."""
        phases = self.stats.phases
        t0 = time.perf_counter()
        given = model_inputs(model, work, skus, inputs)
        t1 = time.perf_counter()
        quantiles = model.predict(given.panel, given.future)
        baseline_median = without_promotions(model, given.panel, given.future, inputs.state, skus)
        t2 = time.perf_counter()
        published = self._publish_forecasts(model, work, skus, inputs, given.end_day, quantiles)
        t3 = time.perf_counter()
        self._alerts(
            ForecastBatch(model, work, skus, quantiles, baseline_median, given.units, inputs)
        )
        t4 = time.perf_counter()
        self._shadow_forecasts(model, work, skus, given)
        phases["inputs"] += t1 - t0
        phases["model"] += t2 - t1
        phases["publish"] += t3 - t2
        phases["alerts"] += t4 - t3
        phases["shadow"] += time.perf_counter() - t4
        return published

    def _publish_forecasts(
        self,
        model: ServingModel,
        work: WindowWork,
        skus: list[str],
        inputs: BatchInputs,
        end_day: datetime,
        quantiles: np.ndarray,
    ) -> int:
        """Publish one ``Forecast`` per SKU and, for the SKUs whose newest window this is,
        write it as their latest (on a thread); return the forecasts published."""
        payloads = forecast_payloads(
            skus,
            work.window,
            model.version,
            datetime.now(UTC),
            model.quantile_levels,
            [end_day + d * DAY for d in range(model.horizon)],
            quantiles,
        )
        topic = self.settings.topic_forecasts
        send = self.producer.send
        for sku, payload in zip(skus, payloads, strict=True):
            send(topic, payload, sku.encode())
        current = inputs.current
        latest: dict[Any, Any] = {  # written during the alerts
            sku: payload for sku, payload, ok in zip(skus, payloads, current, strict=True) if ok
        }
        self.stats.superseded += len(skus) - len(latest)
        if latest:
            write = partial(self.redis.hset, self.layout.latest_forecasts, mapping=latest)
            self._writes.append(self._writer.submit(write))
        self.producer.poll(0)
        self.stats.forecasts += len(payloads)
        self.metrics.forecasts.inc(len(payloads))
        return len(payloads)

    def _shadow_forecasts(
        self, model: ServingModel, work: WindowWork, skus: list[str], given: Any
    ) -> None:
        """The model in shadow forecasts the batch from the same inputs; its forecasts go to
        ``forecasts.shadow`` only (no alerts, not the latest). Skipped when it is the
        serving version or needs other inputs (context length, known covariates)."""
        shadow = self.shadow.current
        if shadow is None or shadow.version == model.version:
            return
        if shadow.context_length != model.context_length or shadow.known != model.known:
            if self._shadow_refused != (shadow.version, model.version):  # once per pair
                self._shadow_refused = (shadow.version, model.version)
                log.warning(
                    "model %s in shadow needs other inputs than %s (context %d vs %d, known "
                    "%s vs %s): not forecast in shadow",
                    shadow.version,
                    model.version,
                    shadow.context_length,
                    model.context_length,
                    shadow.known,
                    model.known,
                )
            return
        quantiles = shadow.predict(given.panel, given.future)
        payloads = forecast_payloads(
            skus,
            work.window,
            shadow.version,
            datetime.now(UTC),
            shadow.quantile_levels,
            [given.end_day + d * DAY for d in range(shadow.horizon)],
            quantiles,
        )
        topic = self.settings.topic_forecasts_shadow
        for sku, payload in zip(skus, payloads, strict=True):
            self.producer.send(topic, payload, sku.encode())
        self.stats.shadow_forecasts += len(payloads)

    def _alerts(self, batch: ForecastBatch) -> None:
        """The alert rules of the batch (:mod:`streams.alerts.orchestration`); the SKUs
        whose newest window this is remember it, in the same round trip."""
        pipe = self.redis.pipeline(transaction=False)
        end_ms = batch.work.end_ms
        current = batch.inputs.current
        newest = {sku: end_ms for sku, ok in zip(batch.skus, current, strict=True) if ok}
        if newest:
            pipe.hset(self.layout.newest_windows, mapping=newest)  # type: ignore[arg-type]
        counts = self.alerts.evaluate(batch, pipe)
        pipe.execute()
        self.stats.restock_alerts += counts.restock
        self.stats.pricing_alerts += counts.pricing
        if counts.restock:
            self.metrics.alerts.labels("restock").inc(counts.restock)
        if counts.pricing:
            self.metrics.alerts.labels("pricing").inc(counts.pricing)

    def _publish(self, topic: str, sku: str, payload: bytes) -> None:
        self.producer.send(topic, payload, sku.encode())
