"""Why the updater fine-tunes: each trigger is a pure function of event time and facts
read elsewhere, returning a :class:`Trigger` (kind, reason, at) or None.

- **schedule**: ``every_days`` event-time days have passed since the champion's training cut;
- **promotion**: promotions starting or ending soon touch SKUs that sold more than ``limit``
  of the recent units;
- **holiday**: a public holiday of ``country`` (the ``holidays`` package) or a configured
  season (christmas, easter) falls within the horizon;
- **drift**: the Page-Hinkley detector fed the champion's standardized errors raised its alarm.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import holidays
from dateutil.easter import easter

from updater.drift import PageHinkley

SEASONS = ("christmas", "easter")


@dataclass(frozen=True)
class Trigger:
    """One reason to fine-tune: ``kind`` (schedule, promotion, holiday, drift), a sentence,
    and the event time it was found at."""

    kind: str
    reason: str
    at: datetime

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "reason": self.reason, "at": self.at.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Trigger:
        return cls(str(data["kind"]), str(data["reason"]), datetime.fromisoformat(data["at"]))


def schedule_trigger(at: datetime, cut: date | None, every_days: int) -> Trigger | None:
    """Due when ``every_days`` (> 0) days passed since ``cut`` (the champion's last training
    day; unknown counts as due)."""
    if every_days <= 0:
        return None
    if cut is None:
        return Trigger("schedule", "the champion's training cut is unknown", at)
    age = (at.date() - cut).days
    if age < every_days:
        return None
    return Trigger("schedule", f"{age} event-time days since the champion's training cut {cut}", at)


def promotion_trigger(
    at: datetime,
    changing: Mapping[str, list[str]],
    units: Mapping[str, float],
    limit: float,
) -> Trigger | None:
    """Due when the SKUs touched by starting or ending promotions (``changing``: SKU →
    promotion ids) sold more than ``limit`` of all ``units`` (SKU → recent units)."""
    total = float(sum(units.values()))
    if total <= 0 or not changing:
        return None
    touched = float(sum(units.get(sku, 0.0) for sku in changing))
    share = touched / total
    if share <= limit:
        return None
    ids = sorted({p for ps in changing.values() for p in ps})
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    return Trigger(
        "promotion",
        f"promotions starting or ending ({shown}) cover {share:.0%} of recent demand "
        f"(over {limit:.0%})",
        at,
    )


def season_days(season: str, years: Iterable[int]) -> list[date]:
    """The days of a named season (christmas: Dec 24-26; easter: Good Friday to Monday)."""
    out: list[date] = []
    for y in years:
        if season == "christmas":
            out += [date(y, 12, d) for d in (24, 25, 26)]
        elif season == "easter":
            e = easter(y)
            out += [e + timedelta(days=d) for d in (-2, -1, 0, 1)]
        else:
            raise ValueError(f"unknown season {season!r}; use one of {list(SEASONS)}")
    return out


def holiday_trigger(
    at: datetime, horizon_days: int, country: str | None, seasons: Iterable[str] = ()
) -> Trigger | None:
    """Due when a holiday of ``country`` or a day of ``seasons`` falls in the ``horizon_days``
    days after ``at``'s day."""
    first = at.date() + timedelta(days=1)
    days = [first + timedelta(days=d) for d in range(horizon_days)]
    if not days:
        return None
    years = sorted({d.year for d in days})
    named: dict[date, str] = {}
    for season in seasons:
        for d in season_days(season, years):
            named.setdefault(d, season)
    if country:
        for d, name in holidays.country_holidays(country, years=years).items():
            named.setdefault(d, str(name))
    ahead = [(d, named[d]) for d in days if d in named]
    if not ahead:
        return None
    d, name = ahead[0]
    return Trigger("holiday", f"{name} on {d} is within the {horizon_days}-day horizon", at)


def drift_trigger(at: datetime, detector: PageHinkley, errors: Iterable[float]) -> Trigger | None:
    """Feed ``errors`` (standardized, in time order) to ``detector``; due at its first alarm."""
    for i, x in enumerate(errors):
        detector.update(float(x))
        if detector.drift_detected:
            return Trigger(
                "drift",
                f"Page-Hinkley alarm on the champion's standardized error after {i + 1} "
                f"values (statistic {detector.statistic:.1f} > {detector.threshold:g})",
                at,
            )
    return None


__all__ = [
    "SEASONS",
    "Trigger",
    "drift_trigger",
    "holiday_trigger",
    "promotion_trigger",
    "schedule_trigger",
    "season_days",
]
