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


class RegistryPathError(RegistryError):
    """A version name or a registry file that would lead outside the registry directory
    (``..``, an absolute path, a symbolic link out): refused."""


class FingerprintMismatchError(RegistryCorruptError):
    """A version's files differ from the fingerprint (``file_sha256``) in its metadata:
    refused, it is not the model that was registered."""

    def __init__(self, version: str, path: object, reason: str) -> None:
        self.version = version
        self.path = path
        ModelError.__init__(
            self,
            f"refused model version {version}: file {path} does not match the fingerprint "
            f"in its metadata.json ({reason}); it is not the model that was registered. "
            "Restore the file, or register the model again as a new version.",
        )


__all__ = [
    "CovariateError",
    "DataError",
    "FingerprintMismatchError",
    "InputError",
    "ModelError",
    "NotFittedError",
    "RegistryCorruptError",
    "RegistryError",
    "RegistryPathError",
]
