"""A synchronous Redis stand-in over :class:`streams.store.memory_sink.MemorySink`, for
FeatureReader."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Any

from streams.store.memory_sink import MemorySink


class FakeRedis:
    """The few read commands FeatureReader and the check use, answered from a MemorySink."""

    def __init__(self, sink: MemorySink) -> None:
        self.sink = sink

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        return {k.encode(): v.encode() for k, v in self.sink.hashes.get(key, {}).items()}

    def smembers(self, key: str) -> set[bytes]:
        return {m.encode() for m in self.sink.sets.get(key, set())}

    def scan_iter(self, match: str = "*", count: int = 0) -> Iterator[bytes]:
        keys = set(self.sink.hashes) | set(self.sink.sets) | set(self.sink.zsets)
        for key in sorted(keys):
            if fnmatch.fnmatchcase(key, match):
                yield key.encode()

    def pipeline(self, transaction: bool = False) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, client: FakeRedis) -> None:
        self.client = client
        self.calls: list[Callable[[], Any]] = []

    def hgetall(self, key: str) -> None:
        self.calls.append(lambda: self.client.hgetall(key))

    def smembers(self, key: str) -> None:
        self.calls.append(lambda: self.client.smembers(key))

    def execute(self) -> list[Any]:
        out = [call() for call in self.calls]
        self.calls.clear()
        return out
