"""The updater's errors: each says what went wrong and how to fix it.

``UpdaterError`` is a :class:`schemas.DemandcastError`; the subclasses name the failures a
decision cycle records instead of promoting (the champion is never touched by them).
"""

from __future__ import annotations

from schemas import DemandcastError


class UpdaterError(DemandcastError):
    """A failure of the updater (a decision could not be made or carried out)."""


class UpdaterBusyError(UpdaterError):
    """Another updater holds the registry's lock: only one decides at a time."""


class NotEnoughHistoryError(UpdaterError):
    """The feature store holds too little history to fine-tune and evaluate."""


class FineTuneDivergedError(UpdaterError):
    """The fine-tune's loss (or the candidate's forecasts) became NaN or infinite."""


class BudgetExceededError(UpdaterError):
    """The fine-tune ran past ``DEMANDCAST_UPDATER_BUDGET_SECONDS``."""


class AuditError(UpdaterError):
    """The decision log in the registry directory cannot be read or written."""


__all__ = [
    "AuditError",
    "BudgetExceededError",
    "FineTuneDivergedError",
    "NotEnoughHistoryError",
    "UpdaterBusyError",
    "UpdaterError",
]
