"""Versioned model registry on the file system, with an atomically switched champion.

Layout::

    <root>/versions/v0001/config.json          # save_pretrained (transformers)
    <root>/versions/v0001/model.safetensors    # weights, safetensors only (never pickle)
    <root>/versions/v0001/metadata.json        # created_at, parent, data range, metrics
    <root>/champion.json                       # {"champion": "v0003", "previous": [...]}

A version directory is written under a temporary name and renamed into place, and
``champion.json`` is written to a temporary file and swapped in with ``os.replace``, so a
reader never sees a half-written version or pointer. ``promote`` pushes the old champion
on ``previous``; ``rollback`` pops it back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.exceptions import (
    FingerprintMismatchError,
    RegistryCorruptError,
    RegistryError,
    RegistryPathError,
)

VERSION_RE = re.compile(r"^v(\d{4,})$")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
"""A name that is no path (no separator, no ``..``, no control character): anything else
given as a version is refused as a path, a safe name that is not ``vNNNN`` is unknown."""
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METADATA = "metadata.json"
POINTER = "champion.json"
FINGERPRINT = "file_sha256"
"""The ``metadata.json`` key of a version's fingerprint: ``{file name: sha256 hex}`` of
every file of the version but ``metadata.json`` itself, written by :meth:`register`."""


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(directory: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``directory`` but ``metadata.json``."""
    return {
        p.relative_to(directory).as_posix(): file_sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.relative_to(directory).as_posix() != METADATA
    }


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then ``os.replace`` it in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """Read a registry JSON file; unreadable content raises :class:`RegistryCorruptError`."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegistryCorruptError(path, f"not valid JSON ({exc})") from None


@dataclass(frozen=True)
class VersionInfo:
    """One row of :meth:`ModelRegistry.list`."""

    version: str
    created_at: str | None
    parent: str | None
    champion: bool
    metrics: dict[str, Any]


class ModelRegistry:
    """A directory of model versions and the champion pointer; see the module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.pointer = self.root / POINTER

    # ----------------------------------------------------------------- reading
    def versions(self) -> list[str]:
        """Version names in ascending order."""
        if not self.versions_dir.is_dir():
            return []
        names = [
            p.name for p in self.versions_dir.iterdir() if p.is_dir() and VERSION_RE.match(p.name)
        ]
        return sorted(names, key=lambda v: int(v[1:]))

    def _pointer(self) -> dict[str, Any]:
        if not self.pointer.exists():
            return {"champion": None, "previous": []}
        data = read_json(self.pointer)
        if (
            not isinstance(data, dict)
            or "champion" not in data
            or not isinstance(data.get("previous", []), list)
        ):
            raise RegistryCorruptError(
                self.pointer, 'expected {"champion": ..., "previous": [...]}'
            )
        previous = list(data.get("previous", []))
        for value in [data["champion"], *previous]:
            if value is not None and (
                not isinstance(value, str) or not VERSION_RE.fullmatch(value)
            ):
                raise RegistryCorruptError(
                    self.pointer,
                    f"names {value!r}, not a version name (vNNNN): a pointer never names a "
                    "path (refused: it could point outside the registry directory)",
                )
        return {"champion": data["champion"], "previous": previous}

    def champion(self) -> str | None:
        """The champion version, or ``None`` when nothing was promoted yet."""
        value = self._pointer()["champion"]
        return str(value) if value is not None else None

    def previous(self) -> list[str]:
        """The former champions, oldest first (:meth:`rollback` returns to the last)."""
        return [str(v) for v in self._pointer()["previous"]]

    def _inside(self, version: str) -> Path:
        """``versions/<version>``, refused (:class:`RegistryPathError`) when ``version`` is
        a path (a separator, ``..``, a control character) or the directory, symbolic links
        resolved, lies outside the registry's ``versions`` directory; a name that is not
        ``vNNNN`` is an unknown version (:class:`RegistryError`)."""
        if not isinstance(version, str) or not _SAFE_NAME.fullmatch(version):
            raise RegistryPathError(
                f"refused model version {version!r}: not a version name (vNNNN); a version "
                f"is a directory of {self.versions_dir}, never a path (no '/', '..' or "
                "absolute paths)"
            )
        p = self.versions_dir / version
        if not VERSION_RE.fullmatch(version):
            known = ", ".join(self.versions()) or "none"
            raise RegistryError(
                f"unknown model version {version!r} in {self.root}; known versions: {known} "
                "(see `demandcast model list`)"
            )
        if p.exists() and not p.resolve().is_relative_to(self.versions_dir.resolve()):
            raise RegistryPathError(
                f"refused model version {version}: {p} resolves to {p.resolve()}, outside "
                f"the registry directory {self.versions_dir}"
            )
        return p

    def path(self, version: str) -> Path:
        """Directory of ``version``; :class:`RegistryError` when it does not exist,
        :class:`RegistryPathError` when the name or the directory is not inside the
        registry."""
        p = self._inside(version)
        if not p.is_dir():
            known = ", ".join(self.versions()) or "none"
            raise RegistryError(
                f"unknown model version {version!r} in {self.root}; known versions: {known} "
                "(see `demandcast model list`)"
            )
        return p

    def metadata(self, version: str) -> dict[str, Any]:
        """The ``metadata.json`` of a version."""
        path = self.path(version) / METADATA
        if not path.exists():
            raise RegistryCorruptError(path, "missing")
        data = read_json(path)
        if not isinstance(data, dict):
            raise RegistryCorruptError(path, "expected a JSON object")
        return data

    def list(self) -> list[VersionInfo]:
        """Every version with its creation time, parent, champion flag and backtest metrics."""
        champ = self.champion()
        out = []
        for v in self.versions():
            meta = self.metadata(v)
            out.append(
                VersionInfo(
                    v,
                    meta.get("created_at"),
                    meta.get("parent_version"),
                    v == champ,
                    meta.get("backtest_metrics") or {},
                )
            )
        return out

    def show(self, version: str) -> dict[str, Any]:
        """Metadata plus the model config of a version, and whether it is the champion."""
        meta = self.metadata(version)
        cfg_path = self.path(version) / CONFIG
        if not cfg_path.exists():
            raise RegistryCorruptError(cfg_path, "missing")
        return {
            "version": version,
            "champion": version == self.champion(),
            "metadata": meta,
            "config": read_json(cfg_path),
        }

    def verify(self, version: str) -> Path:
        """Check that the version's files are inside the registry, match the fingerprint in
        its metadata (when it has one: versions registered before fingerprints have none)
        and are readable; return its directory."""
        p = self.path(version)
        meta = self.metadata(version)
        self._check_files(version, p, meta.get(FINGERPRINT))
        cfg = p / CONFIG
        if not cfg.exists():
            raise RegistryCorruptError(cfg, "missing")
        read_json(cfg)
        weights = p / WEIGHTS
        if not weights.exists():
            raise RegistryCorruptError(weights, "missing (only safetensors weights are loaded)")
        try:
            from safetensors import safe_open

            with safe_open(str(weights), framework="pt") as fh:
                for key in fh.keys():  # noqa: SIM118 - safe_open has no __iter__
                    fh.get_slice(key)
        except Exception as exc:  # safetensors raises its own error types
            raise RegistryCorruptError(weights, f"unreadable safetensors ({exc})") from None
        return p

    def _check_files(self, version: str, p: Path, expected: Any) -> None:
        """Every file of the version lies inside it (no link out of the registry), and, when
        the metadata has a fingerprint, the files are exactly those it lists, byte for byte."""
        root = p.resolve()
        for f in sorted(p.rglob("*")):
            if not f.resolve().is_relative_to(root):
                raise RegistryPathError(
                    f"refused model version {version}: {f} resolves to {f.resolve()}, "
                    f"outside the version directory {p}"
                )
        if expected is None:
            return
        if not isinstance(expected, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in expected.items()
        ):
            raise RegistryCorruptError(
                p / METADATA, f"{FINGERPRINT!r} must map file names to SHA-256 digests"
            )
        for name in expected:
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise RegistryPathError(
                    f"refused model version {version}: its fingerprint names {name!r}, a "
                    "path outside the version directory"
                )
        actual = fingerprint(p)
        for name in sorted(set(expected) | set(actual)):
            if name not in actual:
                raise FingerprintMismatchError(version, p / name, "listed but missing")
            if name not in expected:
                raise FingerprintMismatchError(version, p / name, "not in the fingerprint")
            if actual[name] != expected[name]:
                raise FingerprintMismatchError(
                    version,
                    p / name,
                    f"sha256 {actual[name][:12]}... differs from {expected[name][:12]}...",
                )

    def load(self, version: str, device: str = "auto") -> Any:
        """Load a version as a :class:`~models.pipeline.TransformerForecaster`."""
        from models.pipeline import TransformerForecaster

        p = self.verify(version)
        try:
            return TransformerForecaster.from_pretrained(p, device=device)
        except RegistryError:
            raise
        except Exception as exc:
            raise RegistryCorruptError(p, f"cannot load the model ({exc})") from exc

    def load_champion(self, device: str = "auto") -> Any:
        """Load the champion; :class:`RegistryError` when there is none."""
        champ = self.champion()
        if champ is None:
            raise RegistryError(
                f"no champion model in {self.root}: train one (`demandcast train`) or promote "
                "a version (`demandcast model promote V`); the baselines serve meanwhile"
            )
        return self.load(champ, device)

    # ----------------------------------------------------------------- writing
    def register(
        self,
        forecaster: Any,
        metadata: dict[str, Any] | None = None,
        parent: str | None = None,
        promote: bool | None = None,
    ) -> str:
        """Save ``forecaster`` (anything with ``save_pretrained(path)``) as a new version.

        ``metadata`` is merged into ``metadata.json`` (``created_at`` and
        ``parent_version`` — default: the current champion — are filled in). ``promote``:
        True promotes, False does not, ``None`` promotes only when there is no champion.
        """
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        champ = self.champion()
        meta = dict(metadata or {})
        meta.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
        meta["parent_version"] = parent if parent is not None else champ
        tmp = self.versions_dir / f".tmp-{uuid.uuid4().hex}"
        try:
            forecaster.save_pretrained(tmp)
            if not (tmp / WEIGHTS).exists():
                raise RegistryError("the model was not written as model.safetensors")
            for stray in tmp.glob("*.bin"):
                stray.unlink()
            for _ in range(1000):
                existing = [int(v[1:]) for v in self.versions()]
                version = f"v{(max(existing) + 1) if existing else 1:04d}"
                meta["version"] = version
                meta[FINGERPRINT] = fingerprint(tmp)
                atomic_write_json(tmp / METADATA, meta)
                try:
                    os.rename(tmp, self.versions_dir / version)
                    break
                except OSError:
                    continue  # someone registered the same number meanwhile
            else:
                raise RegistryError(f"could not allocate a version name in {self.versions_dir}")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if promote or (promote is None and champ is None):
            self.promote(version)
        return version

    def promote(self, version: str) -> None:
        """Make ``version`` the champion (after checking its files); the old one is kept for
        :meth:`rollback`."""
        self.verify(version)
        ptr = self._pointer()
        if ptr["champion"] == version:
            return
        previous = ptr["previous"] + ([ptr["champion"]] if ptr["champion"] else [])
        atomic_write_json(
            self.pointer,
            {
                "champion": version,
                "previous": previous,
                "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )

    def rollback(self) -> str:
        """Make the previous champion the champion again; return it."""
        ptr = self._pointer()
        previous = ptr["previous"]
        if not previous:
            raise RegistryError(
                f"nothing to roll back to in {self.root}: the champion "
                f"{ptr['champion'] or '(none)'} has no predecessor; promote a version instead"
            )
        target = previous.pop()
        self.verify(target)
        atomic_write_json(
            self.pointer,
            {
                "champion": target,
                "previous": previous,
                "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        return str(target)


__all__ = [
    "ModelRegistry",
    "VersionInfo",
    "atomic_write_json",
    "file_sha256",
    "fingerprint",
    "read_json",
]
