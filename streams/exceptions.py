"""Errors of the I/O side (Kafka, Redis, the embedded stack), under one root."""

from __future__ import annotations

from schemas import DemandcastError


class StreamsError(DemandcastError):
    """Root of the errors raised by ``streams``."""


class StackError(StreamsError, RuntimeError):
    """The embedded stack could not be started, stopped or inspected; the message says why
    and how to fix it."""


class TopicError(StreamsError, RuntimeError):
    """A Kafka topic could not be listed or created."""


class ReplayError(StreamsError, ValueError):
    """A historical log cannot be replayed (unknown format, unreadable file, bad option)."""


class ProcessError(StreamsError, RuntimeError):
    """A worker process that a command started has exited; the message names its log."""


class StoreError(StreamsError, ValueError):
    """A feature-store request that cannot be served (an unknown frequency or metric)."""


class DeliveryError(StreamsError, RuntimeError):
    """The broker did not acknowledge every message given to a producer: some were refused,
    or the wait for them timed out."""
