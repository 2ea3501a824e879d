"""The shadow pointer: which model version forecasts in the shadow of the champion, and why.

``shadow.json`` in the registry directory, next to the champion pointer, written atomically
by the updater and read by the forecast worker, which forecasts every window with that
version too and publishes those forecasts to ``forecasts.shadow`` (never to ``forecasts``,
never with alerts). Two roles:

- ``challenger``: a candidate that passed the offline evaluation and is not champion yet;
  the updater scores it against the champion on the days after ``since`` and promotes it
  or rejects it;
- ``probation``: the champion before the last promotion, forecasting in shadow after it,
  so that the updater can roll back when the new champion falls behind it live.

No file, or ``version`` null: nothing in shadow. Like the champion pointer it names a
version (``vNNNN``), never a path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models.exceptions import RegistryCorruptError
from models.registry import VERSION_RE, atomic_write_json, read_json

SHADOW_POINTER = "shadow.json"
ROLES = ("challenger", "probation")


@dataclass(frozen=True)
class Shadow:
    """One version in shadow."""

    version: str
    role: str
    """``challenger`` or ``probation`` (see the module docstring)."""
    since: str
    """Event time (ISO 8601) from which its live forecasts are scored."""
    against: str
    """The champion it is scored against (when it was put in shadow)."""
    offline: dict[str, Any] | None = None
    """The offline evaluation that let it in (figures, triggers, data range)."""


class ShadowPointer:
    """Read and write ``shadow.json`` of a registry directory."""

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root) / SHADOW_POINTER

    def get(self) -> Shadow | None:
        if not self.path.exists():
            return None
        data = read_json(self.path)
        if not isinstance(data, dict) or data.get("version") is None:
            return None
        version, role = data.get("version"), data.get("role")
        if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
            raise RegistryCorruptError(self.path, f"names {version!r}, not a version (vNNNN)")
        if role not in ROLES:
            raise RegistryCorruptError(self.path, f"role {role!r} is not one of {ROLES}")
        return Shadow(
            version=version,
            role=str(role),
            since=str(data.get("since")),
            against=str(data.get("against")),
            offline=data.get("offline"),
        )

    def set(self, shadow: Shadow) -> None:
        if shadow.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {shadow.role!r}")
        atomic_write_json(self.path, asdict(shadow))

    def clear(self) -> None:
        """Nothing in shadow (the file stays, naming no version, so its mtime moves)."""
        atomic_write_json(self.path, {"version": None})

    def mtime(self) -> float | None:
        try:
            return self.path.stat().st_mtime_ns / 1e9
        except OSError:
            return None


__all__ = ["ROLES", "SHADOW_POINTER", "Shadow", "ShadowPointer"]
