"""The expiry memo: a TTL already set is not sent again, and nothing is remembered
before the store has applied the batch."""

from __future__ import annotations

import orjson
import pytest

from streams.store import sink as store
from streams.store.sink import ExpiryMemo

from .helpers import order, processor, record, settings

BUCKET = ["M", "u:fh:A:201103", 100, ["units:0109", 1], []]
SERIES = ["B", "u:dy:A:2011", 200, [118, 1, 119, 2550]]
STATE = ["T", "u:s:A", 400]


def test_a_ttl_set_once_is_not_sent_again_until_half_of_it_has_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(store.time, "monotonic", lambda: clock[0])
    memo = ExpiryMemo(refresh_s=10)
    ops, pending = memo.strip([BUCKET, SERIES, STATE])
    assert ops == [BUCKET, SERIES, STATE]  # nothing known yet: every TTL goes
    memo.commit(pending)
    ops, _ = memo.strip([BUCKET, SERIES, STATE])
    assert ops == [[*BUCKET[:2], 0, *BUCKET[3:]], [*SERIES[:2], 0, *SERIES[3:]]]
    assert BUCKET[2] == 100, "the plan's own ops are left as they were"
    clock[0] += 11  # the state's refresh interval has passed, the buckets' half TTL not
    assert [op[2] for op in memo.strip([BUCKET, STATE])[0]] == [0, 400]
    clock[0] += 40  # past half the bucket's TTL: its EXPIRE NX goes again
    assert memo.strip([BUCKET])[0] == [BUCKET]


def test_nothing_is_remembered_without_a_commit_and_the_memo_is_bounded() -> None:
    memo = ExpiryMemo(max_keys=2)
    memo.strip([BUCKET])  # e.g. the store found duplicates and applied nothing
    assert memo.strip([BUCKET])[0] == [BUCKET]
    for key in ("a", "b", "c"):
        memo.commit({key: float("inf")})
    assert memo.strip([[*BUCKET[:1], "c", *BUCKET[2:]]])[0][0][2] == 100, "cleared at the cap"


async def test_every_key_keeps_its_ttl_while_repeated_ttls_stay_out_of_the_script() -> None:
    s = settings()
    proc, sink, _ = processor(s)
    sent: list[dict] = []
    apply = sink.apply

    async def spy(args: list) -> store.Applied:
        sent.append(orjson.loads(args[1]))
        return await apply(args)

    sink.apply = spy  # type: ignore[method-assign]
    await proc.process([record(s, order("1", 0, qty=2), offset=0)])
    await proc.process([record(s, order("2", 60, qty=3), offset=1)])
    first, second = ({(op[0], op[1]): op for op in body["o"]} for body in sent)
    assert first[("M", "u:fh:A:201103")][2] > 0 and second[("M", "u:fh:A:201103")][2] == 0
    assert ("T", "u:s:A") in first and ("T", "u:s:A") not in second
    assert sink.hashes["u:fh:A:201103"]["units:0109"] == "2"
    assert sink.hashes["u:fh:A:201103"]["units:0110"] == "3"
    buckets = [k for k in [*sink.hashes, *sink.strings] if k.split(":")[1] in ("fh", "fd", "dy")]
    assert buckets and all(sink.ttls.get(k, 0) > 0 for k in buckets)
