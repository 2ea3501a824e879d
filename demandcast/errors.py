"""What reaches the command line when a command fails: one message, one exit code.

Every failure a user can cause or fix is a project exception (a ``schemas.DemandcastError``
subclass) whose message says how to fix it; :func:`exit_code_of` maps it to an exit code
that means one thing. Anything else escaping a command is a bug: its traceback is printed
and the exit code is :attr:`ExitCode.INTERNAL`.

=====  ==================  ======================================================
code   name                meaning
=====  ==================  ======================================================
0      ``OK``              done
1      ``CHECK_FAILED``    the command ran and found a problem (``doctor``, ``check
                           features``, ``bench ingest`` losing or doubling events)
2      ``BAD_INPUT``       a bad option, setting, file or table (fix the input)
3      ``SERVICE``         Kafka, Redis, the embedded stack or a worker process is
                           unavailable or failed, or another updater holds the
                           registry's lock (start or fix the service)
4      ``MODEL``           the model registry or a model version is missing, corrupt
                           or unusable, or a fine-tune failed (train, promote or
                           repair a version)
70     ``INTERNAL``        a bug in demandcast (the traceback is printed)
130    ``INTERRUPTED``     stopped with Ctrl-C
=====  ==================  ======================================================
"""

from __future__ import annotations

import traceback
from enum import IntEnum

from models.exceptions import ModelError
from schemas import DemandcastError
from streams.exceptions import StreamsError
from updater.exceptions import NotEnoughHistoryError, UpdaterBusyError, UpdaterError


class CheckFailed(DemandcastError):
    """A command ran to the end and found a problem (a difference, a service down, events
    lost): exit code 1. The message says what was found."""


class ExitCode(IntEnum):
    """The exit codes of ``demandcast``; each means one thing (see the module docstring)."""

    OK = 0
    CHECK_FAILED = 1
    BAD_INPUT = 2
    SERVICE = 3
    MODEL = 4
    INTERNAL = 70
    INTERRUPTED = 130


#: Client libraries whose connection errors mean "a service is unavailable".
_SERVICE_MODULES = ("redis", "confluent_kafka", "aiokafka", "kafka")


def exit_code_of(exc: BaseException) -> ExitCode:
    """The exit code a failure maps to (first match wins: the most specific class)."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, CheckFailed):
        return ExitCode.CHECK_FAILED
    if isinstance(exc, DemandcastError) and isinstance(exc, ValueError):
        return ExitCode.BAD_INPUT  # the project's input errors subclass ValueError
    if isinstance(exc, NotEnoughHistoryError):
        return ExitCode.BAD_INPUT
    if isinstance(exc, UpdaterBusyError):
        return ExitCode.SERVICE  # another updater holds the registry's lock
    if isinstance(exc, ModelError | UpdaterError):
        return ExitCode.MODEL
    if isinstance(exc, StreamsError):
        return ExitCode.SERVICE
    if isinstance(exc, DemandcastError):
        return ExitCode.BAD_INPUT
    if isinstance(exc, ConnectionError | TimeoutError) or _from_client_library(exc):
        return ExitCode.SERVICE
    return ExitCode.INTERNAL


def _from_client_library(exc: BaseException) -> bool:
    root = type(exc).__module__.split(".", 1)[0]
    return root in _SERVICE_MODULES


def describe(exc: BaseException) -> str:
    """The one line printed for a failure (with the traceback first when it is a bug)."""
    code = exit_code_of(exc)
    if code is ExitCode.INTERRUPTED:
        return "interrupted"
    if code is ExitCode.INTERNAL:
        trace = "".join(traceback.format_exception(exc)).rstrip()
        return (
            f"{trace}\ninternal error (a bug in demandcast, please report it with the "
            f"traceback above): {type(exc).__name__}: {exc}"
        )
    if code is ExitCode.SERVICE and not isinstance(exc, DemandcastError):
        return (
            f"a service did not answer ({type(exc).__name__}: {exc}); check that Kafka and "
            "Redis are up (`demandcast doctor`, or `demandcast stack up` for the embedded one)"
        )
    return str(exc)
