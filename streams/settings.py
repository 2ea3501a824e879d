"""The one settings object of demandcast, read from ``DEMANDCAST_*`` environment variables.

Build it once at the entry point (``Settings()``) and pass it down; nothing else in the
project reads the environment. The README's settings table is generated from this class
(``demandcast settings``), so the two cannot drift apart.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Every knob of demandcast. Environment variable: ``DEMANDCAST_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(
        env_prefix="DEMANDCAST_", frozen=True, extra="forbid", case_sensitive=False
    )

    # --- Kafka -------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers"
    )
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols only)"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret)")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS)")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client private key (mutual TLS)")
    app_id: str = Field(
        "demandcast", description="Faust app id: consumer group and internal topic prefix"
    )

    # --- Redis -------------------------------------------------------------------------
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL; rediss:// for TLS, redis://user@host:port/db for ACL users",
    )
    redis_username: str | None = Field(
        None, description="Redis ACL user name (with REDIS_PASSWORD; default: the URL's)"
    )
    redis_password: SecretStr | None = Field(None, description="Redis password (secret)")
    redis_ssl_cafile: Path | None = Field(
        None, description="CA bundle to verify a rediss:// (TLS) Redis"
    )
    redis_prefix: str = Field(
        "dc",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Namespace of every feature-store key in Redis (one per deployment or test)",
    )
    feature_hourly_ttl_days: int = Field(
        35, ge=1, le=3650, description="TTL of an hourly feature bucket key after its last write"
    )
    feature_daily_ttl_days: int = Field(
        800, ge=1, le=3650, description="TTL of a daily feature bucket key after its last write"
    )
    feature_state_ttl_days: int = Field(
        400, ge=1, le=3650, description="TTL of per-SKU state and promotion keys after a write"
    )
    ref_price_days: int = Field(
        28, ge=1, le=3650, description="Reference price: the largest daily price over these days"
    )

    # --- Topics ------------------------------------------------------------------------
    topic_orders: str = Field("orders", description="Order lines in")
    topic_clicks: str = Field("clicks", description="Clickstream in")
    topic_promotions: str = Field("promotions", description="Promotions in")
    topic_inventory: str = Field("inventory", description="Stock positions in")
    topic_dlq: str = Field("events.dlq", description="Dead letters: input that failed")
    topic_windows_closed: str = Field(
        "windows.closed", description="Closed event-time windows and the SKUs changed in them"
    )
    topic_forecasts: str = Field("forecasts", description="Forecasts out, keyed by SKU")
    topic_forecasts_shadow: str = Field(
        "forecasts.shadow",
        description="Forecasts of the model in shadow (a challenger, or the champion before "
        "the last promotion on probation), keyed by SKU; never read as served forecasts",
    )
    topic_alerts_restock: str = Field("alerts.restock", description="Restock alerts out")
    topic_alerts_pricing: str = Field("alerts.pricing", description="Pricing alerts out")
    topic_model_updates: str = Field("model.updates", description="Champion changes out")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of every topic created")
    replication_factor: int = Field(1, ge=1, le=16, description="Replication of created topics")

    # --- Event time --------------------------------------------------------------------
    window_seconds: int = Field(
        3600, ge=60, le=7 * 86400, description="Length of an event-time window in seconds"
    )
    grace_seconds: int = Field(
        600, ge=0, le=7 * 86400, description="How late an event may be before it counts as late"
    )
    dedup_horizon_seconds: int = Field(
        14 * 86400, ge=3600, description="How long an event_id is remembered for deduplication"
    )
    kafka_session_timeout_seconds: float = Field(
        60.0,
        ge=6,
        le=300,
        description="Stream worker: a worker silent this long leaves the consumer group",
    )
    worker_group_instance_id: str | None = Field(
        None,
        description="Stream worker: its static member name in the group (Kafka "
        "group.instance.id; one per worker process): a worker restarted under the same name "
        "takes its partitions back at once instead of after the session timeout (one stopped "
        "for good keeps them until the session timeout)",
    )
    batch_max_events: int = Field(
        20_000,
        ge=1,
        le=100_000,
        description="Stream worker: most records one fetch returns (a batch is one partition's)",
    )

    # --- Models ------------------------------------------------------------------------
    model_registry: Path = Field(
        Path("var/models"), description="Directory of model versions and the champion pointer"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where the model runs: auto picks CUDA when present"
    )
    holiday_country: str = Field("GB", description="Country code for holiday covariates")
    model_compile: bool = Field(
        False,
        description="Serve the model through torch.compile (~1.2x the series/s on CPU); a "
        "loaded model is compiled before it serves: ~1 min on a cold cache, seconds warm",
    )

    # --- Forecast worker and alerts -----------------------------------------------------
    forecaster_group_instance_id: str | None = Field(
        None,
        description="Forecast worker: its static member name in its group (Kafka "
        "group.instance.id; one per forecast worker process): restarted under the same name "
        "it takes its partitions back at once instead of after the session timeout",
    )
    forecast_max_pending_windows: int = Field(
        2,
        ge=1,
        le=10_000,
        description="Pending windows beyond which the forecast worker coalesces into the newest",
    )
    forecast_after: datetime | None = Field(
        None,
        description="Windows ending at or before this UTC time are skipped (a history backfill)",
    )
    forecast_batch_skus: int = Field(
        2048,
        ge=1,
        le=1_000_000,
        description="SKUs per batch in the forecast worker (the next batch is read from "
        "Redis while the model runs this one; a window's first batch is a quarter of it)",
    )
    forecast_cpu_threads: int = Field(
        1,
        ge=0,
        le=1024,
        description="CPU threads of the forecast worker's model; 1 leaves the other cores "
        "to the stream worker, broker and Redis; 0: one per core",
    )
    restock_service_level: float = Field(
        0.9, gt=0.0, lt=1.0, description="Demand quantile a restock alert protects against"
    )
    restock_review_days: float = Field(
        7.0,
        ge=0.0,
        le=365.0,
        description="Review period added to the lead time for restocking (with an order "
        "cost, the shortest: each SKU's is its economic order interval)",
    )
    restock_order_cost_unit_days: float = Field(
        0.0,
        ge=0.0,
        le=1e9,
        description="Cost of placing one order, in unit-days of holding cost (K/h): each "
        "SKU's review period becomes sqrt(2 K / (h x its daily demand)), between "
        "restock_review_days and 56 days (slow sellers order less often); 0: the review "
        "period is restock_review_days for every SKU",
    )
    restock_repeat_change: float = Field(
        0.25,
        ge=0.0,
        le=10.0,
        description="An open restock alert is published again when its recommended quantity "
        "moves by at least this share of the quantity last published",
    )
    restock_repeat_days: int = Field(
        3,
        ge=1,
        le=365,
        description="... or when its expected stock-out date moves by at least this many days",
    )
    pricing_windows: int = Field(
        3,
        ge=1,
        le=365,
        description="Days whose total demand is judged against the 80% interval of that "
        "total (a surge above it, a slump below it)",
    )

    # --- Updater (fine-tune, shadow evaluation, promotion) --------------------------------
    updater_schedule_days: int = Field(
        7,
        ge=0,
        le=3650,
        description="Updater: fine-tune every this many event-time days after the champion's "
        "training cut (0: no schedule trigger)",
    )
    updater_promo_share: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Updater: fine-tune when promotions starting or ending cover more than "
        "this share of the recent demand of the updater's SKUs",
    )
    updater_seasons: str = Field(
        "christmas",
        description="Updater: comma-separated seasons (christmas, easter) that trigger a "
        "fine-tune when they fall within the horizon, besides HOLIDAY_COUNTRY's holidays",
    )
    updater_holiday_trigger: bool = Field(
        True, description="Updater: a holiday within the horizon triggers a fine-tune"
    )
    updater_drift_delta: float = Field(
        0.5,
        ge=0.0,
        description="Updater: Page-Hinkley tolerance in standardized error units (river's "
        "0.005 alarms on long stretches of plain noise)",
    )
    updater_drift_threshold: float = Field(
        50.0, gt=0.0, description="Updater: Page-Hinkley alarm threshold on the cumulative sum"
    )
    updater_top_skus: int = Field(
        500, ge=1, le=1_000_000, description="Updater: fine-tune on the SKUs with most units"
    )
    updater_history_days: int = Field(
        120, ge=7, le=3650, description="Updater: days of store history read for a fine-tune"
    )
    updater_steps: int = Field(200, ge=1, le=1_000_000, description="Updater: fine-tune steps")
    updater_lr: float = Field(1e-3, gt=0.0, le=1.0, description="Updater: fine-tune learning rate")
    updater_trainable: str = Field(
        "all",
        description="Updater: parameters fine-tuned: all, head, last_block or comma-separated "
        "parameter-name prefixes",
    )
    updater_budget_seconds: float = Field(
        300.0, gt=0.0, description="Updater: a fine-tune running longer than this is abandoned"
    )
    updater_cpu_threads: int = Field(
        2,
        ge=0,
        le=1024,
        description="Updater: torch CPU threads of the fine-tune (0: one per core)",
    )
    updater_wql_margin: float = Field(
        0.02,
        ge=0.0,
        lt=1.0,
        description="Updater: promote only when the candidate's WQL is lower than the "
        "champion's by at least this share",
    )
    updater_mase_tolerance: float = Field(
        0.02,
        ge=0.0,
        description="Updater: and its MASE is at most this share above the champion's",
    )
    updater_min_sku_days: int = Field(
        200,
        ge=1,
        description="Updater: fewest observed SKU-days in the held-out window to decide on",
    )
    updater_shadow_days: int = Field(
        7,
        ge=0,
        le=365,
        description="Updater: event-time days a candidate that passed the offline evaluation "
        "forecasts live as challenger (on forecasts.shadow) before the live decision; 0: "
        "promote on the offline evaluation alone",
    )
    updater_probation_days: int = Field(
        14,
        ge=0,
        le=365,
        description="Updater: event-time days the champion before a promotion keeps "
        "forecasting in shadow; the new champion is rolled back when its live WQL is behind "
        "it by the WQL margin (0: no probation)",
    )
    updater_poll_seconds: float = Field(
        60.0, gt=0.0, description="Updater process: seconds between watermark checks"
    )

    # --- Operating: metrics, health, logs --------------------------------------------------
    worker_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Stream worker: port of /metrics, /healthz and /readyz (0: off)",
    )
    forecaster_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Forecast worker: port of /metrics, /healthz and /readyz (0: off)",
    )
    updater_metrics_port: int = Field(
        0, ge=0, le=65535, description="Updater: port of /metrics, /healthz and /readyz (0: off)"
    )
    metrics_host: str = Field(
        "0.0.0.0", description="Address the metrics and health ports listen on"
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines of the processes: text, or json (one object a line)"
    )

    # --- Embedded stack ----------------------------------------------------------------
    state_dir: Path = Field(
        Path("var/stack"), description="Data, logs and PIDs of the embedded Kafka and Redis"
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "demandcast",
        description="Where the Kafka jars fetched with Maven are kept",
    )
    stack_kafka_port: int = Field(9092, ge=1, le=65535, description="Embedded broker port")
    stack_controller_port: int = Field(
        9093, ge=1, le=65535, description="Embedded KRaft controller port"
    )
    stack_redis_port: int = Field(6379, ge=1, le=65535, description="Embedded Redis port")
    stack_kafka_heap_mb: int = Field(512, ge=128, description="Embedded broker's Java heap (MB)")
    stack_start_timeout_s: float = Field(
        90.0, gt=0, description="How long `stack up` waits for both services to answer"
    )

    @model_validator(mode="after")
    def _sasl_consistent(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and self.kafka_sasl_mechanism is None:
            raise ValueError(
                "kafka_security_protocol is SASL_*: set DEMANDCAST_KAFKA_SASL_MECHANISM "
                "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            )
        return self

    def kafka_client_config(self) -> dict[str, Any]:
        """librdkafka (confluent-kafka) configuration for these settings."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username or ""
            conf["sasl.password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
            )
        for key, path in (
            ("ssl.ca.location", self.kafka_ssl_cafile),
            ("ssl.certificate.location", self.kafka_ssl_certfile),
            ("ssl.key.location", self.kafka_ssl_keyfile),
        ):
            if path is not None:
                conf[key] = str(path)
        return conf

    def redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis.from_url(self.redis_url, **kwargs)``."""
        kwargs: dict[str, Any] = {}
        if self.redis_password is not None:
            # the user name only with a password: settings that drop the password (a stack
            # of their own, plaintext) connect as the URL says, not as a user without one
            if self.redis_username:
                kwargs["username"] = self.redis_username
            kwargs["password"] = self.redis_password.get_secret_value()
        if self.redis_ssl_cafile is not None and self.redis_url.startswith("rediss://"):
            kwargs["ssl_ca_certs"] = str(self.redis_ssl_cafile)
        return kwargs

    def public_dump(self) -> dict[str, Any]:
        """The settings as JSON-ready values with every secret hidden: the passwords as
        ``**********``, a password inside a URL as ``***`` (``demandcast settings``)."""
        data = self.model_dump(mode="json")
        for name, value in data.items():
            if isinstance(value, str) and "://" in value:
                data[name] = mask_url(value)
        return data

    def as_env(self) -> dict[str, str]:
        """The environment under which a child process builds exactly these settings
        (the parent's environment, with every ``DEMANDCAST_*`` variable replaced)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEMANDCAST_")}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"DEMANDCAST_{name.upper()}"] = str(value)
        return env

    def namespaced(self, tag: str) -> Settings:
        """These settings with topics, app id and Redis prefix of their own (prefixed by
        ``tag``): a run that shares the brokers and Redis without touching anyone's data."""
        topics = {
            name: f"{tag}.{getattr(self, name)}"
            for name in type(self).model_fields
            if name.startswith("topic_")
        }
        return self.model_copy(
            update={**topics, "app_id": f"{self.app_id}-{tag}", "redis_prefix": tag}
        )

    def input_topics(self) -> tuple[str, ...]:
        return (self.topic_orders, self.topic_clicks, self.topic_promotions, self.topic_inventory)

    def all_topics(self) -> tuple[str, ...]:
        return (
            *self.input_topics(),
            self.topic_dlq,
            self.topic_windows_closed,
            self.topic_forecasts,
            self.topic_forecasts_shadow,
            self.topic_alerts_restock,
            self.topic_alerts_pricing,
            self.topic_model_updates,
        )


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@/\s]+)(@)")


def mask_url(url: str) -> str:
    """``url`` with the password of its user info, if any, written as ``***``."""
    return _URL_PASSWORD.sub(r"\1***\3", url)


def settings_table() -> str:
    """The Markdown table of every setting: variable, default, meaning."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, Path) and str(default).startswith(str(Path.home())):
            default = "~/" + str(default.relative_to(Path.home()))
        shown = "" if default is None else f"`{default}`"
        rows.append(f"| `DEMANDCAST_{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)
