"""Page-Hinkley: a drift detector for a stream of standardized forecast errors.

The river ``drift/`` contract: ``detector.update(x)``, then ``detector.drift_detected``.
Feed it a standardized error (e.g. ``(actual - median) / scale`` or a scaled absolute
error), not raw sales.

The test (Page 1954, Hinkley 1971) for an *increase* of the mean: with the running mean
``x̄_t`` of the values seen so far and a tolerance ``δ``,

    m_t = α·m_{t-1} + (x_t - x̄_t - δ),        M_t = min_{i≤t} m_i,

and drift is signalled when ``m_t - M_t > λ`` (the threshold). ``δ`` absorbs noise-sized
drifts; ``λ`` trades detection delay against false alarms. The fading factor ``α`` (river's
``alpha``, 0.9999) slowly forgets old evidence. After an alarm the detector
restarts, so the next alarm needs new evidence. ``min_instances`` values are seen before
any alarm. Defaults (δ 0.005, λ 50) are river's; tune them on the error stream at hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class PageHinkley:
    """Page-Hinkley test for an increase of the mean of a stream (see the module docstring)."""

    delta: float = 0.005
    threshold: float = 50.0
    min_instances: int = 30
    alpha: float = 0.9999
    n: int = field(default=0, init=False)
    mean: float = field(default=0.0, init=False)
    cumulative: float = field(default=0.0, init=False)
    minimum: float = field(default=0.0, init=False)
    drift_detected: bool = field(default=False, init=False)

    def reset(self) -> None:
        self.n, self.mean, self.cumulative, self.minimum = 0, 0.0, 0.0, 0.0

    def update(self, x: float) -> PageHinkley:
        """Add one value; ``drift_detected`` says whether it raised the alarm. NaN is skipped."""
        if self.drift_detected:
            self.reset()
            self.drift_detected = False
        if not math.isfinite(x):
            return self
        self.n += 1
        self.mean += (x - self.mean) / self.n
        self.cumulative = self.alpha * self.cumulative + (x - self.mean - self.delta)
        self.minimum = min(self.minimum, self.cumulative)
        if self.n >= self.min_instances and self.statistic > self.threshold:
            self.drift_detected = True
        return self

    @property
    def statistic(self) -> float:
        """``m_t - M_t``: how far the cumulative sum rose above its minimum."""
        return self.cumulative - self.minimum


__all__ = ["PageHinkley"]
