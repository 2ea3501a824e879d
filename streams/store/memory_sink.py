"""The feature store in Python dicts: the semantics of ``lua/apply.lua`` and ``lua/drop.lua``
without Redis, for broker-free tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from streams.exceptions import StoreError
from streams.store.keys import KeyLayout
from streams.store.sink import Applied, DueWindow


class MemorySink:
    """The same semantics as :data:`~streams.store.scripts.APPLY_LUA` over Python dicts."""

    def __init__(self, layout: KeyLayout) -> None:
        self.layout = layout
        self.hashes: dict[str, dict[str, str]] = {}
        self.sets: dict[str, set[str]] = {}
        self.zsets: dict[str, dict[str, float]] = {}
        self.strings: dict[str, bytearray] = {}
        self.ttls: dict[str, int] = {}
        self.calls = 0
        self._ops: dict[str, Callable[[str, list[Any]], None]] = {
            "H": self._add_fields,
            "M": self._bucket,
            "X": self._maxima,
            "V": self._versioned,
            "S": self._set_members,
            "Z": self._zset_members,
            "B": self._series,
            "T": self._ttl,
            "F": self._field_if_unset,
            "N": self._clock,
        }

    async def apply(self, args: list[str | int | bytes]) -> Applied:
        import orjson

        self.calls += 1
        ttl = int(args[0])
        plan = orjson.loads(bytes(args[1]) if not isinstance(args[1], str) else args[1])
        dups = [x for key, ids in plan["d"] for x in ids if x in self.sets.get(key, set())]
        if dups:
            return Applied([str(x) for x in dups], [])
        for key, ids in plan["d"]:
            self.sets.setdefault(key, set()).update(ids)
            self.ttls[key] = ttl
        for op in plan["o"]:
            apply = self._ops.get(op[0])
            if apply is None:
                raise StoreError(f"unknown feature-store op {op[0]!r}")
            apply(op[1], op)
        due: list[DueWindow] = []
        for topic, partition, okey, skey_prefix, max_start in plan["w"]:
            starts = sorted(
                int(m) for m, score in self.zsets.get(okey, {}).items() if score <= max_start
            )
            due += [
                (topic, partition, start, sorted(self.sets.get(f"{skey_prefix}{start}", ())))
                for start in starts
            ]
        return Applied([], due)

    # --- one method per op code (see streams.store.plan.Op) ---------------------------

    def _add_fields(self, key: str, op: list[Any]) -> None:
        h = self.hashes.setdefault(key, {})
        f = op[3]
        for j in range(0, len(f), 2):
            h[f[j]] = str(int(h.get(f[j], "0")) + int(f[j + 1]))
        if op[2] > 0:
            self.ttls.setdefault(key, op[2])

    def _bucket(self, key: str, op: list[Any]) -> None:
        self._add_fields(key, op)
        h = self.hashes[key]
        g = op[4]
        for j in range(0, len(g), 2):
            if g[j] not in h or int(h[g[j]]) < int(g[j + 1]):
                h[g[j]] = str(int(g[j + 1]))

    def _maxima(self, key: str, op: list[Any]) -> None:
        h = self.hashes.setdefault(key, {})
        f = op[2]
        for j in range(0, len(f), 2):
            if f[j] not in h or float(h[f[j]]) < float(f[j + 1]):
                h[f[j]] = str(f[j + 1])

    def _versioned(self, key: str, op: list[Any]) -> None:
        h = self.hashes.setdefault(key, {})
        if op[2] not in h or h[op[2]] < op[3]:
            h[op[2]] = op[3]
            f = op[4]
            for j in range(0, len(f), 2):
                h[f[j]] = str(f[j + 1])

    def _set_members(self, key: str, op: list[Any]) -> None:
        self.sets.setdefault(key, set()).update(str(m) for m in op[3])
        if op[2] > 0:
            self.ttls[key] = op[2]

    def _zset_members(self, key: str, op: list[Any]) -> None:
        z = self.zsets.setdefault(key, {})
        m = op[3]
        for j in range(0, len(m), 2):
            z[str(m[j + 1])] = float(m[j])
        if op[2] > 0:
            self.ttls[key] = op[2]

    def _series(self, key: str, op: list[Any]) -> None:
        b = self.strings.setdefault(key, bytearray())
        f = op[3]
        for j in range(0, len(f), 2):
            at = 8 * int(f[j])
            b.extend(bytes(max(0, at + 8 - len(b))))
            total = int.from_bytes(b[at : at + 8], "big", signed=True) + int(f[j + 1])
            b[at : at + 8] = total.to_bytes(8, "big", signed=True)
        if op[2] > 0:
            self.ttls.setdefault(key, op[2])

    def _ttl(self, key: str, op: list[Any]) -> None:
        self.ttls[key] = op[2]

    def _field_if_unset(self, key: str, op: list[Any]) -> None:
        self.hashes.setdefault(key, {}).setdefault(op[2], str(op[3]))

    def _clock(self, key: str, op: list[Any]) -> None:
        self.hashes.setdefault(key, {})[op[2]] = str(int(time.time() * 1000))

    # --- the rest of the Sink protocol ------------------------------------------------

    async def watermarks(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.hashes.get(self.layout.watermarks, {}).items()}

    async def offsets(self) -> dict[str, int] | None:
        held = self.hashes.get(self.layout.offsets, {})
        if not held and self.hashes.get(self.layout.stats):
            return None
        return {k: int(v) for k, v in held.items()}

    async def drop_windows(self, windows: Sequence[DueWindow]) -> None:
        for topic, partition, start, skus in windows:
            key = self.layout.window_skus(topic, partition, start)
            left = self.sets.get(key, set()) - set(skus)
            if left:
                self.sets[key] = left
                continue
            self.sets.pop(key, None)
            self.zsets.get(self.layout.open_windows(topic, partition), {}).pop(str(start), None)

    async def incr_stat(self, name: str, amount: int) -> None:
        h = self.hashes.setdefault(self.layout.stats, {})
        h[name] = str(int(h.get(name, "0")) + amount)
