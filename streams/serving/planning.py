"""Planning the forecast worker's work: which windows to forecast, in which SKU batches.

Pure functions over ``WindowClosed`` messages: merge the messages of one window (one per
input partition), coalesce a backlog into its newest window, leave out a backfill's old
windows, and cut a window's SKUs into model batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas import Window, WindowClosed
from streams.store.keys import epoch_ms

DAY = timedelta(days=1)


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


def backfill_filter(closes: list[WindowClosed], after: datetime | None) -> list[WindowClosed]:
    """The messages of windows that end after ``after`` (all of them when it is None)."""
    if after is None:
        return closes
    return [c for c in closes if c.window.end > after]


def day_floor(moment: datetime) -> datetime:
    """The start (UTC) of the day of ``moment``."""
    moment = moment.astimezone(UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
