"""Getmany-level batching inside Faust: one Faust event per fetched partition batch.

Faust delivers every Kafka record as its own event: per record the fetch loop awaits
``wait_first(callback, suspend_flow)`` (two tasks), the conductor decodes and queues it,
the stream pops it, runs sensors and processors and acks it -- a few event-loop
iterations per record, which caps a Faust agent at roughly 10-20 thousand records/s on a
small machine whatever the agent does.

Here the fetch loop (``Consumer._drain_messages``) is replaced for the *batch topics* (the
four input topics): all records one ``getmany`` returns for a partition travel as a single
:class:`BatchMessage` through the usual path (conductor → topic queue → agent stream), so
Faust's per-event machinery runs once per batch. Everything else is Faust's own:

- the consumer group, rebalancing and the generation check (a carrier fetched before a
  rebalance is skipped like any stale message);
- offset tracking and commits: acking a carrier (which the stream does after the agent
  has processed it, i.e. after the features are durable in Redis) acks every offset it
  carries, exactly as if each record had been acked, so commits advance only over
  processed records; gaps in offsets inside a batch are registered as Faust does
  between records;
- other topics (none today) keep the per-record path.

One addition to Faust's seek: after Faust seeks the assigned partitions to Kafka's
committed offsets (``perform_seek``, at every assignment), each batch-topic partition for
which the feature store holds a *lower* next offset (Redis restarted from an older state
than the one the committed offsets describe) is sought back to the store's offset, so the
events Redis lost are read again; the dedup sets make the re-read idempotent. The store's
offsets come from ``app.demandcast_stored_offsets`` (see :func:`rewind_targets`).

The agent reads the records of a carrier with :func:`records_of`, which also accepts an
ordinary event (``agent.test_context()`` puts those), so agents work with or without this.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ConsumerMessage, ack_lock
from mode.utils.futures import notify

log = logging.getLogger(__name__)


class BatchMessage(ConsumerMessage):
    """A carrier: the Kafka records of one partition from one fetch.

    Its own offset is the last record's; ``records`` are the aiokafka records (with
    ``topic``, ``partition``, ``offset``, ``key``, ``value``).
    """

    __slots__ = ("records",)

    records: list[Any]

    def on_final_ack(self, consumer: Any) -> bool:
        _ack_offsets(consumer, self, [r.offset for r in self.records[:-1]])
        return bool(consumer.ack(self))


def _ack_offsets(consumer: Any, carrier: BatchMessage, offsets: list[int]) -> None:
    """Mark ``offsets`` of the carrier's partition safe to commit (``Consumer.ack`` for
    offsets without a message object each)."""
    if not offsets or not consumer.app.topics.acks_enabled_for(carrier.topic):
        return
    tp = carrier.tp
    with ack_lock:
        committed = consumer._committed_offset[tp]
        acked_index = consumer._acked_index[tp]
        acked = consumer._acked[tp]
        added = 0
        for offset in offsets:
            if (committed is None or offset >= committed) and offset not in acked_index:
                acked_index.add(offset)
                acked.append(offset)
                added += 1
        consumer._n_acked += added
        notify(consumer._waiting_for_ack)


def records_of(event: Any) -> list[Any]:
    """The Kafka records an event stands for: a carrier's batch, or the event's message."""
    message = event.message
    if isinstance(message, BatchMessage):
        return message.records
    return [message]


def rewind_targets(
    committed: Mapping[Any, int | None], stored: Mapping[tuple[str, int], int] | None
) -> dict[Any, int]:
    """Where to seek the partitions of ``committed`` (topic-partition -> Kafka's committed
    offset, None when the group has none) other than Kafka's committed offset: to the
    store's next offset (``stored``, by (topic, partition); a partition it does not name
    has nothing of its records in the store: 0) wherever that is lower than the committed
    one, i.e. the store has lost the effects of records Kafka counts as done. Everywhere
    else the committed offset stands (a store ahead of Kafka only means records applied
    but not yet committed: reading them again changes nothing). ``stored`` None (a store
    with features written before offsets were stored) changes nothing."""
    out: dict[Any, int] = {}
    if stored is None:
        return out
    for tp, offset in committed.items():
        held = stored.get((tp.topic, tp.partition), 0)
        if offset is not None and 0 <= held < offset:
            out[tp] = held
    return out


class BatchingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with partition-batch delivery for the batch topics, and
    the seek back to the feature store's offsets (:func:`rewind_targets`)."""

    batch_topics: frozenset[str] = frozenset()

    async def perform_seek(self) -> None:  # pragma: no cover - needs Kafka
        await super().perform_seek()
        source = getattr(self.app, "demandcast_stored_offsets", None)
        if source is None:
            return
        assigned = [tp for tp in self.assignment() if tp.topic in self.batch_topics]
        if not assigned:
            return
        committed = {tp: self._committed_offset[tp] for tp in assigned}
        stored = await source()
        if stored is None:
            log.warning(
                "the feature store holds no consumed offsets (written before they were "
                "stored): resuming from Kafka's committed offsets"
            )
        targets = rewind_targets(committed, stored)
        for tp, offset in sorted(targets.items()):
            log.warning(
                "%s:%d: the feature store holds offset %d, below Kafka's committed %s "
                "(Redis restarted from an older state?): reading %d records again",
                tp.topic,
                tp.partition,
                offset,
                committed[tp],
                int(committed[tp] or 0) - offset,
            )
        if targets:
            await self.seek_wait(targets)
            on_rewind = getattr(self.app, "demandcast_on_rewind", None)
            if on_rewind is not None:
                reread = {tp: int(committed[tp] or 0) - o for tp, o in targets.items()}
                await on_rewind({(tp.topic, tp.partition): n for tp, n in reread.items()})

    def _carrier(self, tp: Any, records: list[Any]) -> BatchMessage:
        last = records[-1]
        timestamp = last.timestamp / 1000.0 if last.timestamp is not None else None
        carrier = BatchMessage(
            last.topic,
            last.partition,
            last.offset,
            cast(float, timestamp),
            last.timestamp_type,
            None,
            None,
            b"",
            None,
            0,
            0,
            tp,
            generation_id=self.app.consumer_generation_id,
        )
        carrier.records = records
        return carrier

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - needs Kafka
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        batch_topics = self.batch_topics
        to_message = self._to_message
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                await asyncio.sleep(0)
                if records is None or self.should_stop:
                    unset_flag(CONSUMER_FETCHING)
                    continue
                if not self.flow_active:
                    await self.perform_seek()
                    unset_flag(CONSUMER_FETCHING)
                    continue
                generation_id = self.app.consumer_generation_id
                for tp, recs in records.items():
                    if not recs or self.app.consumer_generation_id != generation_id:
                        continue
                    if (
                        active is not None
                        and tp not in active
                        and (tp not in self._buffered_partitions)
                    ):
                        continue
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    r_offset = get_read_offset(tp)
                    if r_offset is not None:
                        recs = [r for r in recs if r.offset >= r_offset]
                        if not recs:
                            continue
                    acks = acks_enabled_for(tp.topic)
                    previous = r_offset
                    if acks:
                        for rec in recs:
                            if previous and rec.offset - previous > 1:
                                await self._add_gap(tp, previous + 1, rec.offset)
                            previous = rec.offset
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if tp.topic in batch_topics:
                        await callback(self._carrier(tp, recs))
                    else:
                        for rec in recs:
                            await callback(to_message(tp, rec))
                    set_read_offset(tp, recs[-1].offset)
                unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


def batching_transport(batch_topics: frozenset[str]) -> type[faust_aiokafka.Transport]:
    """An aiokafka transport class whose consumer batches ``batch_topics``."""
    consumer_cls = type(
        "DemandcastBatchingConsumer", (BatchingConsumer,), {"batch_topics": batch_topics}
    )
    return type("DemandcastTransport", (faust_aiokafka.Transport,), {"Consumer": consumer_cls})
