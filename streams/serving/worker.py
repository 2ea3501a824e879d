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

The serving model is held by :class:`ModelHolder`: a ``ModelUpdate`` or a changed champion
pointer loads the new version on a background thread and swaps it in atomically; a batch
in flight finishes on the model it started with, and a version that fails to load leaves
the old one serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from schemas import (
    ModelUpdate,
    PricingAlert,
    RestockAlert,
    SchemaError,
    Window,
    WindowClosed,
    decode,
)
from streams.alerts.rules import (
    Deviation,
    OpenRestock,
    alert_id,
    assess_restock,
    demand_over_many,
    lift_off_plan,
    persistent_deviation,
    quantile_column,
    restock_transition,
)
from streams.kafka.consumer import group_lag, new_consumer, take
from streams.kafka.producer import Producer
from streams.settings import Settings
from streams.store.keys import epoch_ms

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
BASELINE_VERSION = "baseline-seasonal-quantiles"
SETTLE_AFTER_S = 2.0
"""The longest the worker goes on forecasting without settling (flush and commit)."""
MIN_HISTORY_DAYS_FOR_PRICING = 14
"""Pricing alerts wait until a SKU has sold for two weeks: before that its forecast
interval rests on too little history to call demand outside it a surge or a slump."""
SUPPORTED_KNOWN = frozenset({"price_rel", "promo_flag", "promo_depth"})
"""Known-future covariates the worker derives from the feature store."""


# --- the serving model ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingModel:
    """A loaded model and what the worker needs to know about it."""

    version: str
    forecaster: Any
    quantile_levels: list[float]
    context_length: int
    horizon: int
    known: tuple[str, ...] = ()
    needs_fit: bool = False
    """Baselines are fitted on the history of each batch before predicting."""

    def predict(self, panel: Any, future_known: dict[str, np.ndarray] | None) -> np.ndarray:
        """Quantiles ``(N, horizon, Q)``."""
        if self.needs_fit:
            return np.asarray(self.forecaster.fit(panel).predict(panel, self.horizon))
        return np.asarray(self.forecaster.predict(panel, self.horizon, future_known or None))


def serving_device(device: str) -> str:
    """``cuda`` or ``cpu``: where ``device`` (auto / cpu / cuda) puts the model here."""
    import torch

    if device == "cpu":
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def baseline_model(context_length: int = 56, horizon: int = 28) -> ServingModel:
    """The fallback when the registry has no champion: per-weekday empirical quantiles."""
    from models.baselines import SeasonalEmpiricalQuantiles

    forecaster = SeasonalEmpiricalQuantiles(season=7, seasons=context_length // 7)
    return ServingModel(
        version=BASELINE_VERSION,
        forecaster=forecaster,
        quantile_levels=list(forecaster.quantile_levels),
        context_length=context_length,
        horizon=horizon,
        needs_fit=True,
    )


def load_version(
    registry_root: Path, version: str | None, device: str, compile: bool = False
) -> ServingModel:
    """Load ``version`` (default: the champion) from the registry as a :class:`ServingModel`;
    with ``compile``, its ``torch.compile``'d graph is built here, before it serves."""
    from models.registry import ModelRegistry

    registry = ModelRegistry(registry_root)
    version = version or registry.champion()
    if version is None:
        return baseline_model()
    forecaster = registry.load(version, device=device)
    config = forecaster.config
    unsupported = sorted(set(config.known_covariates or ()) - SUPPORTED_KNOWN)
    if unsupported:
        raise ValueError(
            f"model {version} needs known covariates {unsupported} that the forecast worker "
            f"cannot derive from the feature store (it supplies {sorted(SUPPORTED_KNOWN)})"
        )
    if compile:
        forecaster.compile = True
        seconds = forecaster.warm_up()
        log.info("model %s compiled in %.1f s", version, seconds)
    return ServingModel(
        version=version,
        forecaster=forecaster,
        quantile_levels=list(config.quantile_levels),
        context_length=int(config.context_length),
        horizon=int(config.prediction_length),
        known=tuple(config.known_covariates or ()),
    )


class ModelHolder:
    """The model that serves now; reloads happen off the hot path and swap atomically.

    ``current`` is one attribute read, so a batch that took it keeps using that model even
    if a reload completes meanwhile.
    """

    def __init__(
        self,
        registry_root: Path,
        device: str = "auto",
        loader: Callable[[Path, str | None, str], ServingModel] = load_version,
    ) -> None:
        self.registry_root = registry_root
        self.device = device
        self.loader = loader
        self.last_error: str | None = None
        try:
            self.current: ServingModel = loader(registry_root, None, device)
        except Exception as exc:  # serve the baseline rather than nothing
            self.last_error = f"could not load the champion: {exc}"
            log.error("%s; serving the baseline %s meanwhile", self.last_error, BASELINE_VERSION)
            self.current = baseline_model()
        self.reloads = 0
        self._pointer_mtime = self._pointer_stat()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _pointer_stat(self) -> float | None:
        from models.registry import POINTER

        try:
            return (self.registry_root / POINTER).stat().st_mtime_ns / 1e9
        except OSError:
            return None

    def request(self, version: str | None = None) -> threading.Thread:
        """Load ``version`` (default: the champion) on a background thread, then swap."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._thread.join()
            thread = threading.Thread(
                target=self._load, args=(version,), name="model-reload", daemon=True
            )
            self._thread = thread
            thread.start()
            return thread

    def _load(self, version: str | None) -> None:
        try:
            model = self.loader(self.registry_root, version, self.device)
        except Exception as exc:
            self.last_error = f"could not load model version {version or 'champion'}: {exc}"
            log.error("%s; version %s keeps serving", self.last_error, self.current.version)
            return
        if model.version != self.current.version:
            self.current = model
            self.reloads += 1
            self.last_error = None
            log.info("now serving model version %s", model.version)

    def check_pointer(self) -> threading.Thread | None:
        """Reload when the champion pointer file changed since the last look."""
        mtime = self._pointer_stat()
        if mtime != self._pointer_mtime:
            self._pointer_mtime = mtime
            return self.request(None)
        return None

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


# --- planning the work --------------------------------------------------------------------------


@dataclass
class WindowWork:
    """One window to forecast and the SKUs whose features changed in it."""

    window: Window
    skus: set[str]
    closed_at: datetime

    @property
    def end_ms(self) -> int:
        """The window's end in epoch ms (how ``{prefix}:fc:newest`` keeps it)."""
        return epoch_ms(self.window.end)


def plan_windows(closes: Sequence[WindowClosed], max_pending: int) -> tuple[list[WindowWork], int]:
    """Merge the per-partition messages of each window; coalesce a backlog.

    Returns the windows to forecast, oldest first, and how many windows were coalesced
    away. When more than ``max_pending`` distinct windows are pending, only the newest is
    forecast, for the union of all their SKUs: its features are the freshest, so nothing is
    lost but the intermediate forecasts.
    """
    by_end: dict[datetime, WindowWork] = {}
    for msg in closes:
        work = by_end.get(msg.window.end)
        if work is None:
            by_end[msg.window.end] = WindowWork(msg.window, set(msg.skus), msg.closed_at)
        else:
            work.skus.update(msg.skus)
            work.closed_at = max(work.closed_at, msg.closed_at)
    ordered = [by_end[end] for end in sorted(by_end)]
    if len(ordered) <= max(1, max_pending):
        return ordered, 0
    newest = ordered[-1]
    for work in ordered[:-1]:
        newest.skus.update(work.skus)
    return [newest], len(ordered) - 1


def batch_plan(skus: list[str], size: int) -> list[list[str]]:
    """``skus`` in batches of ``size``, the first a quarter as large.

    The store is read a batch ahead while the model runs, but nothing hides the first
    batch's read: a small first batch starts the model sooner.
    """
    first = min(size, max(1, size // 4))
    head, rest = skus[:first], skus[first:]
    return [head, *(rest[lo : lo + size] for lo in range(0, len(rest), size))] if head else []


def forecast_payloads(
    skus: Sequence[str],
    window: Window,
    version: str,
    created_at: datetime,
    levels: Sequence[float],
    step_times: Sequence[datetime],
    quantiles: np.ndarray,
) -> list[bytes]:
    """The JSON of one :class:`~schemas.Forecast` per SKU, built straight from the array.

    ``quantiles`` has shape ``(len(skus), len(step_times), len(levels))``. Values are
    clipped at 0, made non-decreasing across levels and rounded to 4 decimals (rounding
    keeps both properties), so every payload satisfies the ``Forecast`` contract.

    The numbers of every SKU are written by one ``orjson`` call over the whole array and
    cut into rows; each payload is then one ``%`` into a template holding everything else.
    Building the pydantic models would take ~50x longer, and even plain dicts of Python
    floats ~3x.
    """
    import orjson

    q = np.maximum.accumulate(np.clip(np.asarray(quantiles, dtype=np.float64), 0.0, None), axis=2)
    n, h = len(skus), len(step_times)
    if q.shape != (n, h, len(levels)):
        raise ValueError(f"quantiles must be {(n, h, len(levels))}, got {q.shape}")
    if n == 0:
        return []

    def iso(t: datetime) -> str:
        return t.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def literal(value: Any) -> bytes:
        return orjson.dumps(value).replace(b"%", b"%%")

    head = b"".join(
        [
            b'{"schema_version":1,"sku":%b,"window":',
            literal({"start": iso(window.start), "end": iso(window.end)}),
            b',"model_version":',
            literal(version),
            b',"created_at":',
            literal(iso(created_at)),
            b',"freq":"D","quantile_levels":',
            literal([float(x) for x in levels]),
            b',"steps":[',
        ]
    )
    steps = b",".join(b'{"timestamp":' + literal(iso(t)) + b',"values":[%b]}' for t in step_times)
    template = head + steps + b"]}"
    text = orjson.dumps(np.ascontiguousarray(np.round(q, 4)), option=orjson.OPT_SERIALIZE_NUMPY)
    per_sku = text[3:-3].split(b"]],[[")  # "[[[a,b],[c,d]],[[...]]]" -> "a,b],[c,d" per SKU
    return [
        template % (orjson.dumps(sku), *rows.split(b"],["))
        for sku, rows in zip(skus, per_sku, strict=True)
    ]


def backfill_filter(closes: list[WindowClosed], after: datetime | None) -> list[WindowClosed]:
    """The messages of windows that end after ``after`` (all of them when it is None)."""
    if after is None:
        return closes
    return [c for c in closes if c.window.end > after]


def day_floor(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def forecaster_lag(settings: Settings) -> int:
    """``windows.closed`` messages the forecast worker has not committed yet."""
    return group_lag(settings, f"{settings.app_id}-forecaster", settings.topic_windows_closed)


# --- the worker ----------------------------------------------------------------------------


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
    superseded: int = 0
    """Forecasts of a SKU for a window older than one already forecast for it: published,
    but kept out of the latest forecasts and the alert rules."""
    last_latency_s: float = 0.0
    waited_s: float = 0.0
    """Summed over windows: from a window's ``closed_at`` to the start of its forecast."""
    busy_s: float = 0.0
    """Seconds spent forecasting (reading features, the model, publishing)."""
    phases: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("read", "inputs", "model", "publish", "alerts"), 0.0)
    )
    """Of ``busy_s``: seconds waiting for the store (its reads run a batch ahead, on a
    thread, so only the first batch of a window waits for all of its read), building the
    model inputs, in the model, building and publishing the forecasts, and evaluating the
    alert rules."""

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
            "last_latency_s": round(self.last_latency_s, 4),
            "waited_s": round(self.waited_s, 4),
            "busy_s": round(self.busy_s, 4),
        }


class ForecastWorker:
    """Consume ``windows.closed``, publish forecasts and alerts (see the module docstring)."""

    def __init__(self, settings: Settings, holder: ModelHolder | None = None) -> None:
        import redis
        import torch

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
        self.redis = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
        self.layout = layout_of(settings)
        self.reader = FeatureReader(self.redis, self.layout)
        from streams.kafka.admin import ensure_topics

        ensure_topics(
            settings,
            (
                settings.topic_windows_closed,
                settings.topic_model_updates,
                settings.topic_forecasts,
                settings.topic_alerts_restock,
                settings.topic_alerts_pricing,
            ),
        )
        self.consumer = new_consumer(
            settings,
            f"{settings.app_id}-forecaster",
            {"auto.offset.reset": "earliest", "max.poll.interval.ms": 600_000},
        )
        self.consumer.subscribe([settings.topic_windows_closed, settings.topic_model_updates])
        self.producer = Producer(
            {
                **settings.kafka_client_config(),
                "enable.idempotence": True,
                "linger.ms": 5,
                "compression.type": "lz4",
            },
            what="forecasts and alerts",
        )
        self.stats = WorkerStats()
        self.prefix = f"{settings.redis_prefix}:fc:"
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="latest-forecasts")
        self._reader_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        self._unsettled_since: float | None = None
        """When the oldest work not yet settled (acknowledged and committed) was taken."""
        self._writes: list[Future[Any]] = []

    def _finish_writes(self) -> None:
        """Wait for the background Redis writes (they must land before offsets commit)."""
        writes, self._writes = self._writes, []
        for write in writes:
            write.result()

    # keys of the worker's own state in Redis
    def _key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def close(self) -> None:
        if self._unsettled_since is not None:
            self.settle()
        self._finish_writes()
        self._writer.shutdown()
        self._reader_thread.shutdown()
        self.producer.flush(30)
        self.consumer.close()
        self.redis.close()

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
        unsettled = self._unsettled_since is not None
        messages = take(
            self.consumer, max_messages, min(timeout_s, 0.05) if unsettled else timeout_s
        )
        if not messages:
            if unsettled:
                self.settle()
            return 0
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
                    if update.action in ("promote", "rollback"):
                        self.holder.request(update.version)
                else:
                    closes.append(decode(WindowClosed, raw))
            except SchemaError as exc:
                log.warning("skipping an undecodable message on %s: %s", msg.topic(), exc)
        kept = backfill_filter(closes, self.settings.forecast_after)
        self.stats.skipped += len(closes) - len(kept)
        closes = kept
        works, coalesced = plan_windows(closes, self.settings.forecast_max_pending_windows)
        self.stats.closes += len(closes)
        self.stats.coalesced += coalesced
        for work in works:
            self.forecast_window(work)
        if consumed and self._unsettled_since is None:
            self._unsettled_since = time.monotonic()
        since = self._unsettled_since
        if since is not None and time.monotonic() - since > SETTLE_AFTER_S:
            self.settle()
        return len(works)

    def settle(self) -> None:
        """Wait until every forecast and alert so far is on the broker and the latest
        forecasts are in Redis, then commit the consumed offsets (at least once)."""
        self._finish_writes()
        self.producer.flush(60)
        failed = self.producer.report.take()
        if failed:  # reported, not retried: the offsets are committed all the same
            log.error("%d forecasts and alerts failed delivery; first: %s", len(failed), failed[0])
        self.consumer.commit(asynchronous=False)
        self.redis.hset(self._key("stats"), mapping=dict(self.stats.as_dict()))  # type: ignore[arg-type]
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
            return 0
        forecasts = 0
        batches = batch_plan(skus, self.settings.forecast_batch_skus)
        # the store is read one batch ahead, on a thread: Redis and the model overlap
        ahead = self._reader_thread.submit(self._read_inputs, model, work, batches[0])
        for i, batch in enumerate(batches):
            t0 = time.perf_counter()
            inputs = ahead.result()
            self.stats.phases["read"] += time.perf_counter() - t0
            if i + 1 < len(batches):
                ahead = self._reader_thread.submit(self._read_inputs, model, work, batches[i + 1])
            forecasts += self._forecast_skus(model, work, batch, inputs)
        latency = (datetime.now(UTC) - work.closed_at).total_seconds()
        log.info(
            "window ending %s: %d SKUs forecast %.3fs after it closed (started after %.3fs)",
            work.window.end.isoformat(),
            len(skus),
            latency,
            waited,
        )
        self.stats.busy_s += time.monotonic() - started
        self.stats.windows += 1
        self.stats.last_latency_s = latency
        return forecasts

    def _read_inputs(self, model: ServingModel, work: WindowWork, skus: list[str]) -> _Inputs:
        """Everything one batch needs from Redis: features, state and the alert memory."""
        end_day = day_floor(work.window.end)
        start_day = end_day - model.context_length * DAY
        arrays, state = self.reader.window_inputs(skus, start_day, end_day, at=work.window.end)
        pipe = self.redis.pipeline(transaction=False)
        for name in ("newest", "restock", "expect", "deviations"):
            pipe.hmget(self._key(name), skus)
        newest_raw, open_raw, expect_raw, hist_raw = pipe.execute()
        end_ms = work.end_ms
        current = np.array([raw is None or int(raw) <= end_ms for raw in newest_raw], dtype=bool)
        return _Inputs(arrays, state, current, open_raw, expect_raw, hist_raw)

    def _forecast_skus(
        self, model: ServingModel, work: WindowWork, skus: list[str], inputs: _Inputs
    ) -> int:
        import pandas as pd

        from models.data import Panel

        phases = self.stats.phases
        t0 = time.perf_counter()
        end_day = day_floor(work.window.end)
        start_day = end_day - model.context_length * DAY
        arrays, state = inputs.arrays, inputs.state
        units = arrays.metric("units")
        seen = np.cumsum(units > 0, axis=1) > 0
        index = pd.date_range(start_day.replace(tzinfo=None), periods=units.shape[1], freq="D")
        known, future = self._covariates(
            model, skus, state, units, arrays.metric("revenue_milli"), end_day
        )
        panel = Panel(
            series_ids=list(skus),
            index=index,
            freq="D",
            target=units,
            observed=seen | ~seen.any(axis=1, keepdims=True),
            known=known,
        )
        t1 = time.perf_counter()
        quantiles = model.predict(panel, future)
        baseline_median = self._without_promotions(model, panel, future, state, skus)
        t2 = time.perf_counter()
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
            self._writes.append(
                self._writer.submit(partial(self.redis.hset, self._key("latest"), mapping=latest))
            )
        self.producer.poll(0)
        self.stats.forecasts += len(payloads)
        t3 = time.perf_counter()
        self._alerts(model, work, skus, quantiles, baseline_median, units, inputs)
        phases["inputs"] += t1 - t0
        phases["model"] += t2 - t1
        phases["publish"] += t3 - t2
        phases["alerts"] += time.perf_counter() - t3
        return len(payloads)

    def _without_promotions(
        self,
        model: ServingModel,
        panel: Any,
        future: dict[str, np.ndarray],
        state: dict[str, dict[str, Any]],
        skus: list[str],
    ) -> np.ndarray | None:
        """Day-0 median demand with the future promotion covariates set to 0: what the
        model expects without the promotion (None when the model takes no promotion input
        or nothing is promoted)."""
        promo_inputs = [name for name in ("promo_flag", "promo_depth") if name in model.known]
        if not promo_inputs or not any(state[sku]["promotions"] for sku in skus):
            return None
        plain = {k: (np.zeros_like(v) if k in promo_inputs else v) for k, v in future.items()}
        q = model.predict(panel, plain)
        return np.asarray(q[:, 0] @ quantile_column(model.quantile_levels, 0.5))

    def _covariates(
        self,
        model: ServingModel,
        skus: list[str],
        state: dict[str, dict[str, Any]],
        units: np.ndarray,
        revenue: np.ndarray,
        end_day: datetime,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """History and future values of the model's known covariates, from the store.

        Supported:

        - ``price_rel``: the day's mean unit price (revenue / units) over the SKU's median
          daily price in the context (1.0 on days without sales), as ``models.data`` builds
          it for training; the future holds the last price seen;
        - ``promo_flag`` and ``promo_depth``: promotions active now, until their planned end
          (their history is not kept, so the past is 0).
        """
        n, h = len(skus), model.horizon
        known: dict[str, np.ndarray] = {}
        future: dict[str, np.ndarray] = {}
        for name in model.known:
            past = np.zeros(units.shape)
            ahead = np.zeros((n, h))
            if name == "price_rel":
                with np.errstate(invalid="ignore", divide="ignore"):
                    price = np.where(units > 0, revenue / np.maximum(units, 1), np.nan)
                for i, sku in enumerate(skus):
                    sold = price[i][np.isfinite(price[i])]
                    ref = float(np.median(sold)) if sold.size else None
                    if not ref:
                        past[i], ahead[i] = 1.0, 1.0
                        continue
                    past[i] = np.where(np.isfinite(price[i]), price[i] / ref, 1.0)
                    last = state[sku]["last_price"]
                    ahead[i] = last / ref if last else 1.0
            elif name in ("promo_flag", "promo_depth"):
                for i, sku in enumerate(skus):
                    for promo in state[sku]["promotions"]:
                        days = (promo["planned_end"] - end_day) / DAY
                        span = max(0, min(h, int(np.ceil(days))))
                        value = 1.0 if name == "promo_flag" else promo["depth"]
                        ahead[i, :span] = np.maximum(ahead[i, :span], value)
            else:
                raise ValueError(
                    f"model {model.version} needs known covariate {name!r}, which the "
                    "forecast worker cannot derive from the feature store (it supplies "
                    "price_rel, promo_flag and promo_depth)"
                )
            known[name] = past
            future[name] = ahead
        return known, future

    # --- alerts ----------------------------------------------------------------------
    def _alerts(
        self,
        model: ServingModel,
        work: WindowWork,
        skus: list[str],
        quantiles: np.ndarray,
        baseline_median: np.ndarray | None,
        units: np.ndarray,
        inputs: _Inputs,
    ) -> None:
        """Restock and pricing rules for the SKUs of one batch (see :mod:`streams.alerts.rules`).

        ``baseline_median``: day-0 median demand without the active promotions (None when
        the model has no promotion input: then the forecast itself is the baseline).
        """
        end_day = day_floor(work.window.end)
        sold = units > 0
        history_days = np.where(sold.any(axis=1), units.shape[1] - sold.argmax(axis=1), 0)
        ctx = _AlertContext(
            model=model,
            window=work.window,
            today=end_day.date(),
            created=datetime.now(UTC),
            weights=[quantile_column(model.quantile_levels, q) for q in (0.1, 0.5, 0.9)],
        )
        state, open_raw, expect_raw, hist_raw = (
            inputs.state,
            inputs.open_raw,
            inputs.expect_raw,
            inputs.hist_raw,
        )
        current = inputs.current
        restock = self._restock_candidates(ctx, skus, quantiles, state, open_raw) & current
        pipe = self.redis.pipeline(transaction=False)
        end_ms = work.end_ms
        newest = {sku: end_ms for sku, ok in zip(skus, current, strict=True) if ok}
        if newest:
            pipe.hset(self._key("newest"), mapping=newest)  # type: ignore[arg-type]
        for i, sku in enumerate(skus):
            if not current[i]:
                continue
            st = state[sku]
            if restock[i]:
                self._restock(ctx, sku, quantiles[i], st, _parse_open(open_raw[i]), pipe)
            if DayExpectation.is_for(expect_raw[i], ctx.today):
                continue  # today's expectation is set and yesterday's was evaluated
            expected = DayExpectation.parse(expect_raw[i])
            seasoned = history_days[i] >= MIN_HISTORY_DAYS_FOR_PRICING
            if seasoned and expected is not None and expected.day == ctx.today - timedelta(days=1):
                observed = float(units[i, -1]) if units.shape[1] else 0.0
                self._deviation(ctx, sku, expected, observed, _text(hist_raw[i]), pipe)
                self._promotion_lift(ctx, sku, expected, observed)
            if expected is None or expected.day != ctx.today:
                day0 = quantiles[i, 0]
                lower, median, upper = (float(day0 @ w) for w in ctx.weights)
                promos = st["promotions"]
                today = DayExpectation(
                    day=ctx.today,
                    lower=lower,
                    median=median,
                    upper=upper,
                    promotion_id=promos[0]["promotion_id"] if promos else None,
                    baseline=float(baseline_median[i])
                    if baseline_median is not None and promos
                    else median,
                )
                pipe.hset(self._key("expect"), sku, today.dump())
        pipe.execute()

    def _restock_candidates(
        self,
        ctx: _AlertContext,
        skus: list[str],
        quantiles: np.ndarray,
        state: dict[str, dict[str, Any]],
        open_raw: list[Any],
    ) -> np.ndarray:
        """Which SKUs can change their restock alert: those with inventory whose demand over
        lead time plus review period exceeds their stock position (all at once, in numpy),
        and those with an open alert (it may resolve)."""
        s = self.settings
        with_stock = np.array([state[sku]["on_hand"] is not None for sku in skus], dtype=bool)
        if not with_stock.any():
            return with_stock
        protection = np.array(
            [(state[sku]["lead_time_days"] or 0.0) + s.restock_review_days for sku in skus]
        )
        position = np.array(
            [(state[sku]["on_hand"] or 0) + (state[sku]["on_order"] or 0) for sku in skus]
        )
        high = quantiles @ quantile_column(ctx.model.quantile_levels, s.restock_service_level)
        short = demand_over_many(high, protection) > position
        is_open = np.array([raw is not None for raw in open_raw], dtype=bool)
        return np.asarray(with_stock & (short | is_open))

    def _restock(
        self,
        ctx: _AlertContext,
        sku: str,
        values: np.ndarray,
        st: dict[str, Any],
        previous: OpenRestock | None,
        pipe: Any,
    ) -> None:
        s = self.settings
        assessment = assess_restock(
            values,
            ctx.model.quantile_levels,
            on_hand=st["on_hand"],
            on_order=st["on_order"] or 0,
            lead_time_days=st["lead_time_days"] or 0.0,
            review_period_days=s.restock_review_days,
            service_level=s.restock_service_level,
            first_day=ctx.today,
        )
        transition = restock_transition(previous, assessment)
        if transition is None:
            return
        alert = RestockAlert(
            **ctx.header(f"restock-{transition}", sku),
            status="open" if transition == "open" else "resolved",
            service_level=s.restock_service_level,
            demand_over_lead_time=assessment.demand_over_lead_time,
            lead_time_days=st["lead_time_days"] or 0.0,
            review_period_days=s.restock_review_days,
            on_hand=st["on_hand"],
            on_order=st["on_order"] or 0,
            recommended_order_qty=assessment.recommended_order_qty,
            days_of_cover=assessment.days_of_cover,
            expected_stockout_date=assessment.expected_stockout_date,
        )
        self._publish(s.topic_alerts_restock, sku, alert.to_json())
        self.stats.restock_alerts += 1
        if transition == "open":
            stockout = assessment.expected_stockout_date
            pipe.hset(
                self._key("restock"),
                sku,
                f"{assessment.recommended_order_qty}|{stockout or ''}",
            )
        else:
            pipe.hdel(self._key("restock"), sku)

    def _deviation(
        self,
        ctx: _AlertContext,
        sku: str,
        expected: DayExpectation,
        observed: float,
        history_raw: str,
        pipe: Any,
    ) -> None:
        """Yesterday's demand against the interval forecast for it; a surge or slump alert
        after ``pricing_windows`` days in a row on one side."""
        n = self.settings.pricing_windows
        history = _parse_deviations(history_raw)
        history.append(Deviation(observed, expected.lower, expected.median, expected.upper))
        history = history[-n * 4 :]
        kind = persistent_deviation(history, n)
        if kind is not None:
            recent = history[-n:]
            side = "above" if kind == "surge" else "below"
            alert = PricingAlert(
                **ctx.header(f"pricing-{kind}", sku),
                kind="surge" if kind == "surge" else "slump",
                observed=[d.observed for d in recent],
                forecast_median=[d.median for d in recent],
                interval_lower=[d.lower for d in recent],
                interval_upper=[d.upper for d in recent],
                windows=len(recent),
                evidence=(
                    f"daily demand {side} the 80% forecast interval for the last {len(recent)} "
                    f"days up to {expected.day}: observed "
                    f"{[round(d.observed, 1) for d in recent]} vs median "
                    f"{[round(d.median, 1) for d in recent]}"
                ),
            )
            self._publish(self.settings.topic_alerts_pricing, sku, alert.to_json())
            self.stats.pricing_alerts += 1
            history = []  # the evidence is reported; count afresh
        pipe.hset(self._key("deviations"), sku, _format_deviations(history))

    def _promotion_lift(
        self, ctx: _AlertContext, sku: str, expected: DayExpectation, observed: float
    ) -> None:
        """A promoted day whose realised lift is far from the lift the model expected."""
        if expected.promotion_id is None:
            return
        realised = lift_off_plan(observed, expected.baseline, expected.expected_lift)
        if realised is None:
            return
        alert = PricingAlert(
            **ctx.header("pricing-promo", sku),
            kind="promo_lift_off_plan",
            observed=[observed],
            forecast_median=[expected.median],
            interval_lower=[expected.lower],
            interval_upper=[expected.upper],
            windows=1,
            promotion_id=expected.promotion_id,
            expected_lift=round(expected.expected_lift, 4),
            realised_lift=round(realised, 4),
            evidence=(
                f"promotion {expected.promotion_id} on {expected.day}: observed {observed:g} "
                f"units against {expected.baseline:.1f} without the promotion, a lift of "
                f"{realised:+.0%} where the model expected {expected.expected_lift:+.0%}"
            ),
        )
        self._publish(self.settings.topic_alerts_pricing, sku, alert.to_json())
        self.stats.pricing_alerts += 1

    def _publish(self, topic: str, sku: str, payload: bytes) -> None:
        self.producer.send(topic, payload, sku.encode())


@dataclass(frozen=True)
class _Inputs:
    """What one batch of SKUs read from Redis (see ``ForecastWorker._read_inputs``)."""

    arrays: Any
    state: dict[str, dict[str, Any]]
    current: np.ndarray
    """Per SKU: no newer window was forecast for it before (see the module docstring)."""
    open_raw: list[Any]
    expect_raw: list[Any]
    hist_raw: list[Any]


@dataclass(frozen=True)
class _AlertContext:
    model: ServingModel
    window: Window
    today: date
    created: datetime
    weights: list[np.ndarray]
    """Interpolation weights of the 0.1, 0.5 and 0.9 quantiles."""

    def header(self, kind: str, sku: str) -> dict[str, Any]:
        """The fields every alert of this window carries: id, SKU, window, model, time."""
        return {
            "alert_id": alert_id(kind, sku, self.window),
            "sku": sku,
            "window": self.window,
            "model_version": self.model.version,
            "created_at": self.created,
        }


@dataclass(frozen=True)
class DayExpectation:
    """What the first forecast of a day said about that day (kept per SKU in Redis until
    the day is complete): its 80% interval and median, and for a promoted day the demand
    expected without the promotion."""

    day: date
    lower: float
    median: float
    upper: float
    promotion_id: str | None = None
    baseline: float = 0.0

    @property
    def expected_lift(self) -> float:
        return self.median / self.baseline - 1.0 if self.baseline > 0 else 0.0

    def dump(self) -> bytes:
        """JSON with ``day`` first, as the dataclass declares it (:meth:`is_for` relies on
        that)."""
        import orjson

        return orjson.dumps({**self.__dict__, "day": self.day.isoformat()})

    @staticmethod
    def is_for(raw: bytes | str | None, day: date) -> bool:
        """Whether ``raw`` (as :meth:`dump` wrote it) is the expectation of ``day``, without
        parsing it: every window of a day after its first finds today's expectation."""
        if not raw:
            return False
        head = raw if isinstance(raw, bytes) else raw.encode()
        return head.startswith(_day_head(day))

    @classmethod
    def parse(cls, raw: bytes | str | None) -> DayExpectation | None:
        import orjson

        if not raw:
            return None
        data = orjson.loads(raw)
        return cls(**{**data, "day": date.fromisoformat(data["day"])})


@lru_cache(maxsize=8)
def _day_head(day: date) -> bytes:
    """How :meth:`DayExpectation.dump` starts for ``day`` (``day`` is its first field, and
    a dict keeps the position of a key whose value is replaced)."""
    return b'{"day":"%s"' % day.isoformat().encode()


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    return raw.decode() if isinstance(raw, bytes) else raw


def _parse_open(raw: bytes | str | None) -> OpenRestock | None:
    if not raw:
        return None
    qty, _, when = _text(raw).partition("|")
    return OpenRestock(int(qty), date.fromisoformat(when) if when else None)


def _parse_deviations(raw: str) -> list[Deviation]:
    out = []
    for item in raw.split(";"):
        if item:
            obs, lo, mid, hi = (float(x) for x in item.split(","))
            out.append(Deviation(obs, lo, mid, hi))
    return out


def _format_deviations(history: list[Deviation]) -> str:
    return ";".join(f"{d.observed},{d.lower},{d.median},{d.upper}" for d in history)
