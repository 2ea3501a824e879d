"""Configuration of the demandcast forecaster (layer 1 of config → layers → model → pipeline).

The config is a ``transformers.PretrainedConfig`` (a dataclass in transformers 5), so
``save_pretrained`` writes it as ``config.json`` next to the safetensors weights and
``from_pretrained`` reads it back. Besides the network's hyper-parameters it carries what the
pipeline needs to rebuild the model's inputs from a table: the frequency, the holiday country,
the names of the known-future and static covariates, and the calendar-derived "open" rates.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from transformers import PretrainedConfig

from models.exceptions import InputError

DEFAULT_QUANTILES: list[float] = [round(0.1 * i, 1) for i in range(1, 10)]
#: Year-back inputs by frequency (periods in a year; 0: none). Daily data keeps its weekday
#: lags (the same weekday of the last 8 weeks); hourly data its hour and weekday positions.
YEAR_BACK_PERIODS: dict[str, int] = {"W": 52, "M": 12, "D": 0, "H": 0}
BACKBONES = ("patch", "gpt2")


class DemandcastConfig(PretrainedConfig):
    """Hyper-parameters of :class:`models.modeling.DemandcastForecaster`.

    Shapes the model expects (``B`` series, ``L = context_length``, ``H =
    prediction_length``, ``F = num_covariates``, ``S = num_static_features``, ``Q =
    len(quantile_levels)``): history ``(B, L)``, observed mask ``(B, L)``, covariates
    ``(B, L + H, F)``, static bucket ids ``(B, S)``; output quantiles ``(B, H, Q)``.

    Attributes:
        context_length: steps of history fed to the model; a multiple of ``patch_length``.
        prediction_length: horizon ``H`` predicted in one forward pass.
        patch_length: steps per token (7 for daily data: one token per week).
        d_model, num_layers, num_heads, ffn_dim, dropout: transformer size.
        quantile_levels: increasing levels in (0, 1); must include 0.1, 0.5 and 0.9.
        num_covariates: per-step covariate channels ``F`` (calendar + known covariates).
        covariate_names: the ``F`` channel names, in order.
        known_covariates: table columns used as known-future covariates.
        static_features: table columns used as static features (hashed into buckets).
        use_series_id: also hash the series id as a static feature.
        num_static_buckets: size of the hashing embedding for static features.
        clip_quantile: per-series quantile of the context above which history is clipped
            (robustness to one-off wholesale orders); ``None`` disables clipping.
        backbone: ``"patch"`` (own pre-LN encoder) or ``"gpt2"`` (``GPT2Model``, GPT4TS style).
        gpt2_path: local directory with GPT-2 weights to start from (only for ``gpt2``).
        freq, season_length, holiday_country: how covariates are built from timestamps.
        seasonal_lags: each horizon step also sees the sorted values of the same season
            position in the last ``seasonal_lags`` seasons of the context (the empirical
            distribution a per-weekday quantile baseline uses); 0 disables. Capped at
            ``context_length // season_length``.
        open_rate: per season position, the share of periods the shop sold anything.
        holiday_open_rate: the same share on public holidays.
        seasonal_lag_period: the period of the ``seasonal_lags`` (``None``: ``season_length``;
            1 for weekly data with year-back inputs: the sorted last 8 weeks).
        year_back_period: periods in a year (52 weekly, 12 monthly); every step (context and
            horizon) also sees the values ``year_back_period ± year_back_neighbours`` periods
            before it, with their observed mask, read from the whole history (not only the
            context), masked where unobserved, before the history or at/after the origin.
            0: off. ``None`` (a config saved before these inputs existed, or a fresh one):
            off in the network; :meth:`TransformerForecaster.fit` picks it by frequency
            (:data:`YEAR_BACK_PERIODS`).
        year_back_neighbours: ``K``: the ``2K + 1`` values around the same period last year.
        read_levels: per quantile level, the level of the network's quantile function to
            read so that the output covers what it says (fitted on the validation windows,
            :mod:`models.calibration`); ``None``: read the levels as they are.
    """

    model_type = "demandcast_forecaster"

    context_length: int = 112
    prediction_length: int = 28
    patch_length: int = 14
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 2
    ffn_dim: int = 128
    dropout: float = 0.1
    quantile_levels: list[float] = field(default_factory=lambda: list(DEFAULT_QUANTILES))
    num_covariates: int = 0
    covariate_names: list[str] = field(default_factory=list)
    known_covariates: list[str] = field(default_factory=list)
    static_features: list[str] = field(default_factory=list)
    use_series_id: bool = False
    num_static_buckets: int = 1024
    clip_quantile: float | None = 0.99
    backbone: str = "patch"
    gpt2_path: str | None = None
    freq: str = "D"
    season_length: int = 7
    seasonal_lags: int = 8
    holiday_country: str | None = "GB"
    open_rate: list[float] | None = None
    holiday_open_rate: float | None = None
    seasonal_lag_period: int | None = None
    year_back_period: int | None = None
    year_back_neighbours: int = 2
    read_levels: list[float] | None = None
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.validate_values()

    def validate_values(self) -> None:
        """Raise :class:`InputError` naming the first inconsistent value."""
        if self.patch_length < 1 or self.context_length < self.patch_length:
            raise InputError(
                f"context_length={self.context_length} must be >= patch_length="
                f"{self.patch_length} >= 1"
            )
        if self.context_length % self.patch_length:
            raise InputError(
                f"context_length={self.context_length} is not a multiple of patch_length="
                f"{self.patch_length}; pick e.g. {self.patch_length * 16}"
            )
        if self.prediction_length < 1:
            raise InputError(f"prediction_length must be >= 1, got {self.prediction_length}")
        levels = [float(q) for q in self.quantile_levels]
        if not levels or any(not 0.0 < q < 1.0 for q in levels) or sorted(set(levels)) != levels:
            raise InputError(
                f"quantile_levels must be strictly increasing values in (0, 1), got {levels}"
            )
        for needed in (0.1, 0.5, 0.9):
            if not any(abs(q - needed) < 1e-9 for q in levels):
                raise InputError(f"quantile_levels must include {needed}; got {levels}")
        if self.d_model % self.num_heads:
            raise InputError(
                f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}"
            )
        if self.backbone not in BACKBONES:
            raise InputError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if len(self.covariate_names) not in (0, self.num_covariates):
            raise InputError(
                f"covariate_names has {len(self.covariate_names)} names but num_covariates="
                f"{self.num_covariates}"
            )
        if self.year_back_period is not None and self.year_back_period < 0:
            raise InputError(f"year_back_period must be >= 0, got {self.year_back_period}")
        if self.year_back_neighbours < 0:
            raise InputError(f"year_back_neighbours must be >= 0, got {self.year_back_neighbours}")
        if self.seasonal_lag_period is not None and self.seasonal_lag_period < 1:
            raise InputError(f"seasonal_lag_period must be >= 1, got {self.seasonal_lag_period}")
        if self.clip_quantile is not None and not 0.5 <= self.clip_quantile <= 1.0:
            raise InputError(f"clip_quantile must be in [0.5, 1] or None, got {self.clip_quantile}")

    @property
    def lag_period(self) -> int:
        """The period of the seasonal lags: ``seasonal_lag_period`` or ``season_length``."""
        return self.seasonal_lag_period or self.season_length

    @property
    def effective_seasonal_lags(self) -> int:
        """Seasonal lags actually used: ``min(seasonal_lags, context_length // lag_period)``."""
        if self.lag_period < 1:
            return 0
        return max(0, min(self.seasonal_lags, self.context_length // self.lag_period))

    @property
    def year_back_width(self) -> int:
        """Year-back values per step (``2K + 1``), 0 when the inputs are off."""
        return 2 * self.year_back_neighbours + 1 if self.year_back_period else 0

    @property
    def num_static_features(self) -> int:
        """``S``: hashed static inputs per series (static columns, plus the series id)."""
        return len(self.static_features) + (1 if self.use_series_id else 0)

    @property
    def median_index(self) -> int:
        """Index of the 0.5 level in ``quantile_levels`` (the point forecast)."""
        return min(
            range(len(self.quantile_levels)), key=lambda i: abs(self.quantile_levels[i] - 0.5)
        )


__all__ = ["BACKBONES", "DEFAULT_QUANTILES", "YEAR_BACK_PERIODS", "DemandcastConfig"]
