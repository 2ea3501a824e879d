"""The Prometheus metrics of every demandcast process, each set on its own registry.

One class per process: :class:`StreamMetrics` (``demandcast worker``),
:class:`ForecastMetrics` (``demandcast forecaster``) and :class:`UpdaterMetrics`
(``demandcast updater``). Each takes a :class:`prometheus_client.CollectorRegistry` (a
fresh one by default), so two processes in one interpreter (the tests) never share a
counter. The hot paths count per batch, never per event.

:func:`exported_metric_names` lists the sample names all three export (counters with
``_total``, histograms with ``_bucket``/``_sum``/``_count``); the dashboard test checks
every panel's query against it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Window close to last forecast, in seconds."""
SCRIPT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""One feature-store script (a batch of up to 20,000 events), in seconds."""

DEAD_LETTER_REASONS = ("unknown_topic", "null_value", "schema", "undecodable")


def dead_letter_reason(reason: str) -> str:
    """The metric label of a dead letter's free-text reason (a few fixed values)."""
    if reason.startswith("no event type"):
        return "unknown_topic"
    if reason.startswith("empty message"):
        return "null_value"
    if reason.startswith("undecodable"):
        return "undecodable"
    return "schema"


class ProcessMetrics:
    """What every process exports: whether it is ready, and the lag of its consumer."""

    process = "process"

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.ready = Gauge(
            "demandcast_ready",
            "1 when the process is ready (consuming, partitions assigned, model loaded)",
            ["process"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "demandcast_consumer_lag",
            "Messages of a partition not yet consumed (high watermark minus the next offset)",
            ["process", "topic", "partition"],
            registry=r,
        )
        self.ready.labels(self.process).set(0)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag.labels(self.process, topic, str(partition)).set(max(lag, 0))


class StreamMetrics(ProcessMetrics):
    """The stream worker's metrics (counted per batch by the processor and the agents)."""

    process = "worker"

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.consumed = Counter(
            "demandcast_events_consumed_total",
            "Input records consumed, by topic",
            ["topic"],
            registry=r,
        )
        self.applied = Counter(
            "demandcast_events_applied_total",
            "Input events applied to the feature store (duplicates excluded), by topic",
            ["topic"],
            registry=r,
        )
        self.duplicates = Counter(
            "demandcast_events_duplicate_total",
            "Redelivered or replayed events the store had already applied, by topic",
            ["topic"],
            registry=r,
        )
        self.late = Counter(
            "demandcast_events_late_total",
            "Events older than their partition's watermark minus the grace, by topic",
            ["topic"],
            registry=r,
        )
        self.dead_letters = Counter(
            "demandcast_dead_letters_total",
            "Records sent to the dead-letter topic, by reason",
            ["reason"],
            registry=r,
        )
        self.script_seconds = Histogram(
            "demandcast_store_script_duration_seconds",
            "Seconds one batch's feature-store script took (apply exactly once)",
            buckets=SCRIPT_BUCKETS,
            registry=r,
        )
        self.windows_closed = Counter(
            "demandcast_windows_closed_total",
            "Closed event-time windows published to windows.closed",
            registry=r,
        )
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)


class ForecastMetrics(ProcessMetrics):
    """The forecast worker's metrics (counted per window and per batch of SKUs)."""

    process = "forecaster"

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.closes = Counter(
            "demandcast_window_closes_consumed_total",
            "windows.closed messages consumed (one per window per input partition)",
            registry=r,
        )
        self.windows = Counter("demandcast_windows_forecast_total", "Windows forecast", registry=r)
        self.coalesced = Counter(
            "demandcast_windows_coalesced_total",
            "Pending windows coalesced into a newer one (not forecast on their own)",
            registry=r,
        )
        self.forecasts = Counter(
            "demandcast_forecasts_published_total",
            "Forecast messages published (one per SKU per window)",
            registry=r,
        )
        self.latency = Histogram(
            "demandcast_forecast_latency_seconds",
            "Seconds from a window's close to its last forecast published",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.alerts = Counter(
            "demandcast_alerts_total",
            "Alerts published, by kind (restock, pricing)",
            ["kind"],
            registry=r,
        )
        self.model = Gauge(
            "demandcast_serving_model_info",
            "1 for the model version serving now",
            ["version"],
            registry=r,
        )
        self.reloads = Counter(
            "demandcast_model_reloads_total",
            "Hot reloads: the serving model version changed",
            registry=r,
        )
        self.model_updates = Counter(
            "demandcast_model_updates_total",
            "ModelUpdate messages consumed, by action (promote, rollback, ...)",
            ["action"],
            registry=r,
        )
        for kind in ("restock", "pricing"):
            self.alerts.labels(kind)
        self._version: str | None = None

    def serving(self, version: str) -> None:
        """Record the serving version (a change after the first counts as a reload)."""
        if version == self._version:
            return
        if self._version is not None:
            self.model.remove(self._version)
            self.reloads.inc()
        self.model.labels(version).set(1)
        self._version = version


class UpdaterMetrics(ProcessMetrics):
    """The updater's metrics (counted per decision cycle)."""

    process = "updater"

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.cycles = Counter(
            "demandcast_updater_cycles_total",
            "Decision cycles, by outcome (challenger, promoted, rejected, rolled_back, "
            "confirmed, abandoned, failed; idle, shadowing and probation decide nothing)",
            ["outcome"],
            registry=r,
        )
        self.triggers = Counter(
            "demandcast_updater_triggers_total",
            "Triggers that fired, by kind (schedule, promotion, holiday, drift, ...)",
            ["kind"],
            registry=r,
        )
        self.fine_tunes = Counter(
            "demandcast_updater_fine_tunes_total",
            "Fine-tunes started (a trigger fired and the champion was evaluated)",
            registry=r,
        )
        self.promotions = Counter(
            "demandcast_updater_promotions_total", "Candidates promoted to champion", registry=r
        )
        self.rejections = Counter(
            "demandcast_updater_rejections_total",
            "Candidates rejected by the shadow evaluation",
            registry=r,
        )
        self.rollbacks = Counter(
            "demandcast_updater_rollbacks_total",
            "Champions rolled back on probation (behind their predecessor live)",
            registry=r,
        )
        self.failures = Counter(
            "demandcast_updater_failures_total",
            "Cycles that failed (diverged, over budget, registry or broker errors)",
            registry=r,
        )
        self.shadow_score = Gauge(
            "demandcast_updater_shadow_score",
            "The last shadow evaluation's figures, by model (champion, candidate, "
            "challenger_live, ...) and metric",
            ["model", "metric"],
            registry=r,
        )
        self.cycle_seconds = Histogram(
            "demandcast_updater_cycle_duration_seconds",
            "Seconds one triggered decision cycle took",
            buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.event_time = Gauge(
            "demandcast_updater_event_time_seconds",
            "The watermark the updater last read (Unix seconds)",
            registry=r,
        )
        for outcome in UPDATER_OUTCOMES:
            self.cycles.labels(outcome)


UPDATER_OUTCOMES = (
    "idle",
    "challenger",
    "shadowing",
    "promoted",
    "rejected",
    "probation",
    "rolled_back",
    "confirmed",
    "abandoned",
    "failed",
)
"""Every outcome of an updater cycle (:mod:`updater.cycle`, :mod:`updater.live`)."""

PROCESS_METRICS: tuple[type[ProcessMetrics], ...] = (StreamMetrics, ForecastMetrics, UpdaterMetrics)


def exported_metric_names() -> set[str]:
    """Every metric and sample name the processes export (``foo``, ``foo_total``,
    ``foo_bucket``, ...), from the definitions above."""
    names: set[str] = set()
    for cls in PROCESS_METRICS:
        for family in cls().registry.collect():
            names.add(family.name)
            if family.type == "counter":
                names.add(f"{family.name}_total")
            elif family.type == "histogram":
                names.update(f"{family.name}{s}" for s in ("_bucket", "_sum", "_count"))
    return names
