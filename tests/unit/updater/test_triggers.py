from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from updater.drift import PageHinkley
from updater.triggers import (
    drift_trigger,
    holiday_trigger,
    promotion_trigger,
    schedule_trigger,
    season_days,
)

AT = datetime(2011, 6, 10, 12, tzinfo=UTC)


def test_schedule_is_due_after_every_days_of_event_time() -> None:
    assert schedule_trigger(AT, date(2011, 6, 5), 7) is None
    t = schedule_trigger(AT, date(2011, 6, 3), 7)
    assert t is not None and t.kind == "schedule" and t.at == AT and "7 event-time days" in t.reason
    assert schedule_trigger(AT, None, 7) is not None
    assert schedule_trigger(AT, date(2000, 1, 1), 0) is None


def test_promotion_fires_above_the_share_of_demand() -> None:
    units = {"A": 80.0, "B": 20.0}
    assert promotion_trigger(AT, {"B": ["p1"]}, units, 0.2) is None
    t = promotion_trigger(AT, {"A": ["p1", "p2"]}, units, 0.2)
    assert t is not None and t.kind == "promotion" and "80%" in t.reason and "p1" in t.reason
    assert promotion_trigger(AT, {}, units, 0.0) is None
    assert promotion_trigger(AT, {"A": ["p"]}, {"A": 0.0}, 0.0) is None


def test_holiday_ahead_from_the_country_and_the_seasons() -> None:
    # GB: Good Friday, 22 April 2011; nothing in the week after 10 June
    assert holiday_trigger(AT, 7, "GB") is None
    t = holiday_trigger(datetime(2011, 4, 18, tzinfo=UTC), 7, "GB")
    assert t is not None and t.kind == "holiday" and "2011-04-22" in t.reason
    dec = datetime(2011, 12, 20, tzinfo=UTC)
    t = holiday_trigger(dec, 7, None, ["christmas"])
    assert t is not None and "christmas on 2011-12-24" in t.reason
    assert holiday_trigger(dec, 3, None, ["christmas"]) is None
    assert holiday_trigger(dec, 0, "GB", ["christmas"]) is None


def test_season_days() -> None:
    assert date(2011, 4, 24) in season_days("easter", [2011])  # Easter Sunday 2011
    with pytest.raises(ValueError, match="unknown season"):
        season_days("diwali", [2011])


def test_drift_trigger_feeds_the_detector() -> None:
    assert drift_trigger(AT, PageHinkley(threshold=5, min_instances=5), [0.0] * 50) is None
    t = drift_trigger(AT, PageHinkley(threshold=5, min_instances=5), [0.0] * 20 + [3.0] * 20)
    assert t is not None and t.kind == "drift" and "Page-Hinkley" in t.reason
