"""The alert memory the forecast worker keeps in Redis between windows, and its one codec.

Three hashes with one field per SKU (keys named by :class:`streams.store.keys.KeyLayout`):

- ``{p}:fc:restock`` (``open_restocks``): the SKU's open restock alert, as
  ``"{recommended_order_qty}|{expected_stockout_date}"`` (ISO date, empty when there is
  none; :func:`dump_open` / :func:`parse_open`). Written when an alert opens or is
  published again, deleted when it resolves.
- ``{p}:fc:expect`` (``day_expectations``): what the first forecast of a day said about that
  day and the N-day total starting it, a :class:`DayExpectation` as JSON with ``day`` first
  (:meth:`DayExpectation.dump`).
  Written by the first window of each day; the next day's first window compares it with
  the day's demand.
- ``{p}:fc:deviations`` (``deviations``): the SKU's days of the current pricing block,
  ``"observed,lower,median,upper"`` per day (the day's demand and the interval of the N-day
  total starting that day), oldest first, joined by ``;`` (:func:`dump_deviations` /
  :func:`parse_deviations`); emptied when the block's total is judged.

Every reader takes the raw value Redis returns (bytes, str or None for a missing field).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from streams.alerts.rules import Deviation, OpenRestock

Raw = bytes | str | None
"""A field as Redis returns it: bytes, or None when the SKU has none."""


def text(raw: Raw) -> str:
    if raw is None:
        return ""
    return raw.decode() if isinstance(raw, bytes) else raw


# --- open restock alerts ----------------------------------------------------------------


def dump_open(alert: OpenRestock) -> str:
    return f"{alert.recommended_order_qty}|{alert.expected_stockout_date or ''}"


def parse_open(raw: Raw) -> OpenRestock | None:
    if not raw:
        return None
    qty, _, when = text(raw).partition("|")
    return OpenRestock(int(qty), date.fromisoformat(when) if when else None)


# --- deviation history --------------------------------------------------------------------


def dump_deviations(history: list[Deviation]) -> str:
    return ";".join(f"{d.observed},{d.lower},{d.median},{d.upper}" for d in history)


def parse_deviations(raw: Raw) -> list[Deviation]:
    out = []
    for item in text(raw).split(";"):
        if item:
            obs, lo, mid, hi = (float(x) for x in item.split(","))
            out.append(Deviation(obs, lo, mid, hi))
    return out


# --- the day's expectation ----------------------------------------------------------------


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
    total_lower: float = 0.0
    total_median: float = 0.0
    total_upper: float = 0.0
    """The 80% interval and median of the total demand over the ``pricing_windows`` days
    starting with this day (the pricing rule on totals); 0 in an expectation written before
    it existed."""

    @property
    def expected_lift(self) -> float:
        return self.median / self.baseline - 1.0 if self.baseline > 0 else 0.0

    def dump(self) -> bytes:
        """JSON with ``day`` first, as the dataclass declares it (:meth:`is_for` relies on
        that)."""
        import orjson

        return orjson.dumps({**self.__dict__, "day": self.day.isoformat()})

    @staticmethod
    def is_for(raw: Raw, day: date) -> bool:
        """Whether ``raw`` (as :meth:`dump` wrote it) is the expectation of ``day``, without
        parsing it: every window of a day after its first finds today's expectation."""
        if not raw:
            return False
        head = raw if isinstance(raw, bytes) else raw.encode()
        return head.startswith(_day_head(day))

    @classmethod
    def parse(cls, raw: Raw) -> DayExpectation | None:
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
