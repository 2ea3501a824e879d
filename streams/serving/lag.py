"""How far the forecast worker is behind: its consumer group's lag on ``windows.closed``."""

from __future__ import annotations

from streams.kafka.consumer import group_lag
from streams.settings import Settings


def forecaster_group(settings: Settings) -> str:
    """The forecast workers' consumer group."""
    return f"{settings.app_id}-forecaster"


def forecaster_lag(settings: Settings) -> int:
    """``windows.closed`` messages the forecast worker has not committed yet."""
    return group_lag(settings, forecaster_group(settings), settings.topic_windows_closed)
