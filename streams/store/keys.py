"""The feature store's vocabulary: every Redis key (:class:`KeyLayout`), the bucket metrics,
retention, and the time and money encodings shared by the writers and the readers.

Units: quantities are integers; money is stored as integer thousandths of the currency
unit (``revenue_milli``, ``price_max_milli``) so that sums are exact and independent of
the order in which events arrive. The read API converts them back to floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from streams.settings import Settings

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

SERIES_METRICS: tuple[str, ...] = ("units", "revenue_milli")
"""Metrics also kept as a dense daily series per SKU and year (the forecaster's read)."""

SUM_METRICS: tuple[str, ...] = (
    "units",
    "revenue_milli",
    "lines",
    "cancel_units",
    "cancel_lines",
    "views",
    "carts",
    "purchases",
)
"""Metrics that are summed per bucket."""
MAX_METRICS: tuple[str, ...] = ("price_max_milli",)
"""Metrics that keep the largest value seen in the bucket."""
METRICS: tuple[str, ...] = SUM_METRICS + MAX_METRICS
MILLI_METRICS = frozenset({"revenue_milli", "price_max_milli"})


def to_milli(amount: float) -> int:
    """Money as integer thousandths (``2.55`` -> ``2550``), rounded half away from zero."""
    scaled = amount * 1000.0
    return int(scaled + 0.5) if scaled >= 0 else -int(-scaled + 0.5)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (exact for whole milliseconds)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def version_of(event_ms: int, event_id: str) -> str:
    """The comparable version of a state update: event time, then event id.

    Lexicographic order of these strings is event-time order, ties broken by id, so the
    final state does not depend on the order of arrival (replays and late events cannot
    overwrite a newer value).
    """
    return f"{event_ms:015d}|{event_id}"


@dataclass(frozen=True)
class KeyLayout:
    """Every Redis key the project writes, under one prefix (see docs/feature-store.md): the
    feature store's, then the forecast worker's."""

    prefix: str

    def hourly(self, sku: str, month: str) -> str:
        return f"{self.prefix}:fh:{sku}:{month}"

    def daily(self, sku: str, month: str) -> str:
        return f"{self.daily_prefix}{sku}:{month}"

    @property
    def daily_prefix(self) -> str:
        return f"{self.prefix}:fd:"

    def daily_series(self, sku: str, year: str) -> str:
        return f"{self.daily_series_prefix}{sku}:{year}"

    @property
    def daily_series_prefix(self) -> str:
        return f"{self.prefix}:dy:"

    def state(self, sku: str) -> str:
        return f"{self.state_prefix}{sku}"

    @property
    def state_prefix(self) -> str:
        return f"{self.prefix}:s:"

    def promotion(self, promotion_id: str) -> str:
        return f"{self.prefix}:pr:{promotion_id}"

    def promotions_of_sku(self, sku: str) -> str:
        return f"{self.promotions_of_sku_prefix}{sku}"

    @property
    def promotions_of_sku_prefix(self) -> str:
        return f"{self.prefix}:prs:"

    def promotions_of_category(self, category: str) -> str:
        return f"{self.prefix}:prc:{category}"

    def dedup(self, day: str) -> str:
        return f"{self.prefix}:dd:{day}"

    @property
    def watermarks(self) -> str:
        return f"{self.prefix}:wm"

    @property
    def offsets(self) -> str:
        """``{topic}:{partition}`` -> the next offset to read: one past the highest offset
        whose effects the store holds (written by the same script as the features)."""
        return f"{self.prefix}:off"

    def open_windows(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:wo:{topic}:{partition}"

    def window_skus(self, topic: str, partition: int, start_ms: int) -> str:
        return f"{self.prefix}:ws:{topic}:{partition}:{start_ms}"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    # --- the forecast worker's own keys (streams.serving, streams.alerts) ---------------

    @property
    def forecaster_prefix(self) -> str:
        return f"{self.prefix}:fc:"

    @property
    def latest_forecasts(self) -> str:
        """SKU -> the JSON of the latest ``Forecast`` of the SKU."""
        return f"{self.forecaster_prefix}latest"

    @property
    def newest_windows(self) -> str:
        """SKU -> the end (epoch ms) of the newest window forecast for the SKU."""
        return f"{self.forecaster_prefix}newest"

    @property
    def open_restocks(self) -> str:
        """SKU -> its open restock alert (:mod:`streams.alerts.state`)."""
        return f"{self.forecaster_prefix}restock"

    @property
    def day_expectations(self) -> str:
        """SKU -> what the first forecast of the day said of it (:mod:`streams.alerts.state`)."""
        return f"{self.forecaster_prefix}expect"

    @property
    def deviations(self) -> str:
        """SKU -> its recent days against their forecast interval (:mod:`streams.alerts.state`)."""
        return f"{self.forecaster_prefix}deviations"

    @property
    def forecaster_stats(self) -> str:
        """The forecast worker's counters and timings (``WorkerStats.as_dict``)."""
        return f"{self.forecaster_prefix}stats"


@dataclass(frozen=True)
class Retention:
    """TTLs (seconds) of the keys, refreshed on every write."""

    hourly_s: int
    daily_s: int
    state_s: int
    dedup_s: int


def layout_of(settings: Settings) -> KeyLayout:
    return KeyLayout(settings.redis_prefix)


def retention_of(settings: Settings) -> Retention:
    return Retention(
        hourly_s=settings.feature_hourly_ttl_days * 86_400,
        daily_s=settings.feature_daily_ttl_days * 86_400,
        state_s=settings.feature_state_ttl_days * 86_400,
        dedup_s=settings.dedup_horizon_seconds,
    )
