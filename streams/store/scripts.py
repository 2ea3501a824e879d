"""The feature store's Lua scripts, kept as ``lua/*.lua`` files of this package (each opens
with a comment saying what it receives and returns)."""

from __future__ import annotations

from importlib import resources


def _lua(name: str) -> str:
    return resources.files("streams.store").joinpath("lua", name).read_text()


APPLY_LUA = _lua("apply.lua")
"""The stream worker's write: a batch, exactly once (:func:`streams.store.sink.apply_batch`)."""
DROP_LUA = _lua("drop.lua")
"""Forget the published SKUs of closed windows (``RedisSink.drop_windows``)."""
SERIES_LUA = _lua("series.lua")
"""The forecast worker's read (:meth:`streams.store.reader.FeatureReader.window_inputs`)."""
