"""The :class:`Forecaster` protocol and the statistical baselines (numpy only).

Every forecaster is fitted on a :class:`~models.data.Panel` (history up to the forecast
origin) and returns quantiles ``(N, H, Q)`` — non-negative and non-decreasing along Q —
for the ``H`` periods after the panel's last one. The baselines build their quantiles from
in-sample residuals (or, for :class:`SeasonalEmpiricalQuantiles`, from the raw values), and
double as the fallback when no trained model exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, Self, runtime_checkable

import numpy as np

from models.config import DEFAULT_QUANTILES
from models.data import Panel
from models.exceptions import InputError, NotFittedError


@runtime_checkable
class Forecaster(Protocol):
    """Fit on a history panel; predict quantiles ``(N, H, Q)`` for the next ``H`` periods."""

    name: str

    @property
    def quantile_levels(self) -> list[float]:
        """The increasing quantile levels of :meth:`predict`'s last axis."""
        ...

    def fit(self, panel: Panel) -> Forecaster:
        """Learn from ``panel`` (everything before the forecast origin); returns ``self``."""
        ...

    def predict(
        self,
        panel: Panel,
        horizon: int,
        future_known: Mapping[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Quantiles ``(N, horizon, Q)`` for the periods after ``panel``'s last one.

        ``future_known`` maps known-covariate names to ``(N, horizon)`` future values
        (ignored by forecasters that use no covariates).
        """
        ...


def monotone_nonneg(q: np.ndarray) -> np.ndarray:
    """Clip at 0 and make non-decreasing along the last axis (running maximum)."""
    return np.maximum.accumulate(np.clip(q, 0.0, None), axis=-1)


def check_history(panel: Panel, horizon: int) -> np.ndarray:
    """Validate a history panel; return its target with unobserved steps as 0 ``(N, T)``."""
    if panel.num_series == 0 or panel.length == 0:
        raise InputError("the history panel is empty: it needs at least one series and period")
    if horizon < 1:
        raise InputError(f"horizon must be >= 1, got {horizon}")
    x = np.where(panel.observed, panel.target, 0.0)
    if not np.isfinite(x).all():
        raise InputError("the history contains NaN or infinite targets; write 0 for no sales")
    return x


def _residual_offsets(res: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """``(N, K)`` residuals (NaN = missing) → ``(N, Q)`` residual quantiles (0 when none)."""
    with np.errstate(all="ignore"):
        ok = ~np.isnan(res).all(axis=1)
        out = np.zeros((res.shape[0], len(levels)))
        if ok.any():
            out[ok] = np.nanquantile(res[ok], list(levels), axis=1).T
    return out


class _Baseline:
    name = "baseline"

    def __init__(
        self,
        season: int = 7,
        quantile_levels: Sequence[float] | None = None,
        residual_window: int | None = None,
    ) -> None:
        if season < 1:
            raise InputError(f"season must be >= 1, got {season}")
        self.season = season
        self.quantile_levels = list(quantile_levels or DEFAULT_QUANTILES)
        self.residual_window = residual_window or 8 * season
        self._fitted = False

    def fit(self, panel: Panel) -> Self:
        check_history(panel, 1)
        self._fitted = True
        return self

    def _start(self, panel: Panel, horizon: int) -> np.ndarray:
        if not self._fitted:
            raise NotFittedError(f"{self.name}: call fit(panel) before predict")
        return check_history(panel, horizon)

    def _finish(self, point: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        return monotone_nonneg(point[:, :, None] + offsets[:, None, :])


def _seasonal_naive_point(x: np.ndarray, season: int, horizon: int) -> np.ndarray:
    """``(N, T)`` history → ``(N, horizon)`` repeats of its last ``season`` periods (zeros
    where the history is shorter than a season)."""
    n, t = x.shape
    padded = np.concatenate([np.zeros((n, max(season - t, 0))), x], axis=1)
    return padded[:, -season:][:, np.arange(horizon) % season]


class SeasonalNaive(_Baseline):
    """Repeat the last season: ``yhat_{T+h} = y_{T+h-m·ceil(h/m)}``, every quantile equal to
    that point forecast (no band).

    The backtest's skill reference, as issue 4 and most published WQL tables measure it:
    its WQL equals its WAPE. :class:`SeasonalNaiveBand` adds residual quantiles.
    """

    name = "seasonal_naive"

    def predict(
        self, panel: Panel, horizon: int, future_known: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        x = self._start(panel, horizon)
        point = np.clip(_seasonal_naive_point(x, self.season, horizon), 0.0, None)
        return np.repeat(point[:, :, None], len(self.quantile_levels), axis=2)


class SeasonalNaiveBand(_Baseline):
    """Seasonal naive with residual-quantile bands.

    Quantiles: the seasonal-naive point + empirical quantiles of the lag-``m`` residuals
    ``y_t - y_{t-m}`` over the last ``residual_window`` periods, clipped at 0. Its median
    is (almost) the point forecast, so its MASE is that of :class:`SeasonalNaive`.
    """

    name = "seasonal_naive_band"

    def predict(
        self, panel: Panel, horizon: int, future_known: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        x = self._start(panel, horizon)
        n, t = x.shape
        m = self.season
        point = _seasonal_naive_point(x, m, horizon)
        obs = panel.observed
        if t > m:
            res = np.where(obs[:, m:] & obs[:, :-m], x[:, m:] - x[:, :-m], np.nan)
            res = res[:, -self.residual_window :]
        else:
            res = np.full((n, 1), np.nan)
        return self._finish(point, _residual_offsets(res, self.quantile_levels))


class ZeroForecast(_Baseline):
    """Every quantile 0 (no sales): the floor any forecaster of intermittent demand must
    beat. Its WQL is 1 by construction (the pinball loss of 0 sums to the actuals)."""

    name = "zero"

    def predict(
        self, panel: Panel, horizon: int, future_known: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        x = self._start(panel, horizon)
        return np.zeros((x.shape[0], horizon, len(self.quantile_levels)))


class MovingAverage(_Baseline):
    """Mean of the last ``window`` observed periods, flat over the horizon.

    Quantiles: point + empirical quantiles of ``y_t - mean(y_{t-w..t-1})`` over the last
    ``residual_window`` periods, clipped at 0.
    """

    name = "moving_average"

    def __init__(
        self, window: int = 28, season: int = 7, quantile_levels: Sequence[float] | None = None
    ) -> None:
        super().__init__(season, quantile_levels)
        if window < 1:
            raise InputError(f"window must be >= 1, got {window}")
        self.window = window

    def predict(
        self, panel: Panel, horizon: int, future_known: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        x = self._start(panel, horizon)
        obs = panel.observed.astype(np.float64)
        w = self.window
        csum = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)
        ccnt = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(obs, axis=1)], axis=1)
        t = x.shape[1]
        lo = np.maximum(np.arange(t + 1) - w, 0)
        sums = csum - csum[:, lo]
        cnts = ccnt - ccnt[:, lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(cnts > 0, sums / np.maximum(cnts, 1), np.nan)  # mean before step t
        point = np.nan_to_num(means[:, -1])[:, None].repeat(horizon, axis=1)
        res = np.where(panel.observed, x - means[:, :-1], np.nan)[:, -self.residual_window :]
        return self._finish(point, _residual_offsets(res, self.quantile_levels))


class ExponentialSmoothing(_Baseline):
    """Additive-seasonal exponential smoothing (Holt–Winters without trend), own numpy code.

    ``l_t = α (y_t - s_{t-m}) + (1 - α) l_{t-1}``, ``s_t = γ (y_t - l_t) + (1 - γ) s_{t-m}``,
    ``yhat_{T+h} = l_T + s_{T+h-m}``; ``(α, γ)`` is picked per series from a small grid by
    the in-sample one-step squared error. Quantiles: point + empirical quantiles of the
    one-step residuals over the last ``residual_window`` periods, clipped at 0.
    """

    name = "exp_smoothing"
    ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.5)
    GAMMAS = (0.0, 0.05, 0.1, 0.2)

    def predict(
        self, panel: Panel, horizon: int, future_known: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        x = self._start(panel, horizon)
        obs = panel.observed
        n, t = x.shape
        m = self.season
        first = np.where(obs.any(axis=1), obs.argmax(axis=1), t)
        best_sse = np.full(n, np.inf)
        best_point = np.zeros((n, horizon))
        best_res = np.full((n, min(self.residual_window, t)), np.nan)
        rows = np.arange(n)
        for a in self.ALPHAS:
            for g in self.GAMMAS:
                level = np.zeros(n)
                seas = np.zeros((n, m))
                started = np.zeros(n, dtype=bool)
                sse = np.zeros(n)
                res = np.full((n, t), np.nan)
                for k in range(t):
                    y = x[:, k]
                    on = obs[:, k]
                    new = on & ~started
                    level[new] = y[new]
                    started |= on
                    pos = k % m
                    pred = level + seas[:, pos]
                    upd = on & ~new
                    e = y - pred
                    res[upd, k] = e[upd]
                    sse[upd & (k >= first + m)] += e[upd & (k >= first + m)] ** 2
                    new_level = a * (y - seas[:, pos]) + (1 - a) * level
                    seas[upd, pos] = (g * (y - new_level) + (1 - g) * seas[:, pos])[upd]
                    level = np.where(upd, new_level, level)
                better = sse < best_sse
                if not better.any():
                    continue
                steps = (t + np.arange(horizon)) % m
                point = level[:, None] + seas[:, steps]
                best_sse[better] = sse[better]
                best_point[better] = point[better]
                best_res[better] = res[rows[better]][:, -self.residual_window :]
        return self._finish(best_point, _residual_offsets(best_res, self.quantile_levels))


class SeasonalEmpiricalQuantiles(_Baseline):
    """Per season position (weekday for daily data), the empirical quantiles of the values
    at that position in the last ``seasons`` seasons: ``q_τ(h) = Quantile_τ{y_{T+h-k·m},
    k = 1..seasons}`` over observed values (0 when none). A strong baseline for retail.
    """

    name = "seasonal_quantiles"

    def __init__(
        self, season: int = 7, seasons: int = 8, quantile_levels: Sequence[float] | None = None
    ) -> None:
        super().__init__(season, quantile_levels)
        if seasons < 1:
            raise InputError(f"seasons must be >= 1, got {seasons}")
        self.seasons = seasons

    def predict(
        self, panel: Panel, horizon: int, future_known: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        x = self._start(panel, horizon)
        n, t = x.shape
        m = self.season
        vals = np.where(panel.observed, x, np.nan)
        out = np.zeros((n, horizon, len(self.quantile_levels)))
        cache: dict[int, np.ndarray] = {}
        for h in range(horizon):
            p = h % m
            if p not in cache:
                cols = [t - m * k + p for k in range(1, self.seasons + 1)]
                cols = [c for c in cols if 0 <= c < t]
                sample = vals[:, cols] if cols else np.full((n, 1), np.nan)
                cache[p] = _residual_offsets(sample, self.quantile_levels)
            out[:, h] = cache[p]
        return monotone_nonneg(out)


def default_baselines(
    season: int, quantile_levels: Sequence[float] | None = None
) -> list[Forecaster]:
    """Every baseline with its default settings for a season length."""
    return [
        SeasonalNaive(season, quantile_levels),
        SeasonalNaiveBand(season, quantile_levels),
        ZeroForecast(season, quantile_levels),
        MovingAverage(window=max(4 * season, 4), season=season, quantile_levels=quantile_levels),
        ExponentialSmoothing(season, quantile_levels),
        SeasonalEmpiricalQuantiles(season, 8, quantile_levels),
    ]


__all__ = [
    "ExponentialSmoothing",
    "Forecaster",
    "MovingAverage",
    "SeasonalEmpiricalQuantiles",
    "SeasonalNaive",
    "SeasonalNaiveBand",
    "ZeroForecast",
    "check_history",
    "default_baselines",
    "monotone_nonneg",
]
