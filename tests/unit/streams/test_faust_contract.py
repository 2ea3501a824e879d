"""The fast path's contract with Faust (faust-streaming is pinned to one minor version).

``BatchingConsumer._drain_messages`` replaces a private method of Faust's consumer. These
tests fail when the Faust installed is not the one the override was written against: the
upstream method's source changed, the fetcher stopped calling it, or an attribute the
override reads is gone. On a failure, read the new upstream ``Consumer._drain_messages``,
carry its changes into ``streams/ingest/fastpath.py``, and record the new digest here.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap

import faust
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.ingest.fastpath import BatchingConsumer

#: sha256 of ``inspect.getsource(faust.transport.consumer.Consumer._drain_messages)`` in the
#: faust-streaming release the override mirrors.
UPSTREAM_DIGEST = "8f35dd7a11144daa6ec9a3739a497b03a9dd6b57cca18aa861bb4a549400fc68"
WRITTEN_AGAINST = "0.15"


def _source(fn: object) -> str:
    return textwrap.dedent(inspect.getsource(fn))  # type: ignore[arg-type]


def test_faust_is_the_minor_version_the_fast_path_was_written_against() -> None:
    assert faust.__version__.startswith(WRITTEN_AGAINST + "."), faust.__version__


def test_the_upstream_drain_loop_is_the_one_the_override_mirrors() -> None:
    digest = hashlib.sha256(_source(faust_consumer.Consumer._drain_messages).encode()).hexdigest()
    assert digest == UPSTREAM_DIGEST, (
        "faust's Consumer._drain_messages changed: port the change to "
        "streams/ingest/fastpath.py and update UPSTREAM_DIGEST"
    )


def test_the_fetcher_still_runs_the_consumers_drain_loop() -> None:
    assert inspect.iscoroutinefunction(faust_consumer.Consumer._drain_messages)
    params = list(inspect.signature(faust_consumer.Consumer._drain_messages).parameters)
    assert params == ["self", "fetcher"]
    assert list(inspect.signature(BatchingConsumer._drain_messages).parameters) == params
    assert "consumer._drain_messages(self)" in _source(faust_consumer.Fetcher)


def _attributes_read(fn: object) -> set[str]:
    tree = ast.parse(_source(fn))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }


def test_every_consumer_attribute_the_override_reads_exists_upstream() -> None:
    ours = {name for name in vars(BatchingConsumer) if not name.startswith("__")}
    upstream_classes = faust_aiokafka.Consumer.__mro__
    assigned = set()
    for cls in upstream_classes:
        try:
            assigned |= _attributes_read(cls)
        except (OSError, TypeError, SyntaxError):  # builtins and C types
            continue
    missing = [
        name
        for name in sorted(_attributes_read(BatchingConsumer._drain_messages))
        if name not in ours
        and name != "batch_topics"
        and not hasattr(faust_aiokafka.Consumer, name)
        and name not in assigned
    ]
    assert not missing, f"faust's consumer no longer has {missing}"
