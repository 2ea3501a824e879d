"""Every error the ``models`` package raises on purpose.

All of them derive from :class:`ModelError`, itself a :class:`schemas.DemandcastError`, and
their messages say what was wrong *and* how to fix it.
"""

from __future__ import annotations

from schemas import DemandcastError


class ModelError(DemandcastError):
    """Root of the errors of the forecasting models, data preparation and registry."""


class InputError(ModelError, ValueError):
    """Tensors or arrays handed to a forecaster have the wrong shape, dtype or values."""


class DataError(ModelError, ValueError):
    """A table (order log, long table) cannot be turned into a training panel."""


class CovariateError(DataError):
    """A covariate name that the table or the trained model does not know."""


class NotFittedError(ModelError, RuntimeError):
    """``predict`` was called before ``fit``."""


class RegistryError(ModelError):
    """The model registry cannot do what was asked (unknown version, nothing to roll back)."""


class RegistryCorruptError(RegistryError):
    """A file inside the model registry cannot be read; ``path`` names it."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = path
        super().__init__(
            f"corrupt model registry file {path}: {reason}. Fix or delete that file "
            "(or the version directory holding it) and promote a healthy version."
        )


__all__ = [
    "CovariateError",
    "DataError",
    "InputError",
    "ModelError",
    "NotFittedError",
    "RegistryCorruptError",
    "RegistryError",
]
