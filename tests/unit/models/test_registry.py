"""Model registry: versions, champion pointer, promote / rollback, corrupt files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.exceptions import RegistryCorruptError, RegistryError
from models.pipeline import TransformerForecaster
from models.registry import ModelRegistry

from .conftest import TINY_MODEL


@pytest.fixture
def forecaster() -> TransformerForecaster:
    return TransformerForecaster.from_pretrained(TINY_MODEL, device="cpu")


@pytest.fixture
def registry(tmp_path: Path, forecaster: TransformerForecaster) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "registry")
    reg.register(forecaster, {"training_data": {"fingerprint": "abc"}})
    reg.register(forecaster, {"backtest_metrics": {"transformer": {"wql": 0.5}}})
    return reg


def test_register_writes_safetensors_and_metadata(registry: ModelRegistry) -> None:
    assert registry.versions() == ["v0001", "v0002"]
    files = sorted(p.name for p in registry.path("v0001").iterdir())
    assert files == ["config.json", "metadata.json", "model.safetensors"]
    meta = registry.metadata("v0002")
    assert meta["parent_version"] == "v0001"
    assert meta["version"] == "v0002" and "created_at" in meta
    assert registry.champion() == "v0001"  # first version became champion, second did not
    rows = registry.list()
    assert [r.champion for r in rows] == [True, False]
    assert rows[1].metrics == {"transformer": {"wql": 0.5}}
    assert not list(registry.root.rglob("*.tmp")) and not list(registry.root.rglob(".tmp-*"))


def test_promote_and_rollback(registry: ModelRegistry) -> None:
    registry.promote("v0002")
    assert registry.champion() == "v0002"
    assert registry.show("v0002")["champion"] is True
    assert registry.rollback() == "v0001"
    assert registry.champion() == "v0001"
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()


def test_load_champion_forecasts(registry: ModelRegistry, panel: object) -> None:
    f = registry.load_champion(device="cpu")
    assert isinstance(f, TransformerForecaster)
    q = f.predict(panel, 7, {"price_rel": np.ones((12, 7))})  # type: ignore[arg-type]
    assert q.shape == (12, 7, 9)


def test_unknown_version_and_empty_registry(tmp_path: Path, registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match=r"unknown model version 'v0009'.*v0001, v0002"):
        registry.promote("v0009")
    with pytest.raises(RegistryError, match="no champion"):
        ModelRegistry(tmp_path / "empty").load_champion()
    assert ModelRegistry(tmp_path / "empty").list() == []


@pytest.mark.parametrize("name", ["metadata.json", "config.json", "model.safetensors"])
def test_corrupt_version_file_is_named(registry: ModelRegistry, name: str) -> None:
    bad = registry.path("v0002") / name
    bad.write_bytes(b"\x00garbage{")
    with pytest.raises(RegistryCorruptError) as info:
        registry.promote("v0002")
    assert str(bad) in str(info.value)
    assert registry.champion() == "v0001"  # the pointer did not move


def test_corrupt_pointer_is_named(registry: ModelRegistry) -> None:
    registry.pointer.write_text("{not json")
    with pytest.raises(RegistryCorruptError, match=r"champion\.json"):
        registry.champion()
    registry.pointer.write_text(json.dumps(["v0001"]))
    with pytest.raises(RegistryCorruptError, match=r"champion\.json"):
        registry.load_champion()


def test_missing_weights_is_named(registry: ModelRegistry) -> None:
    (registry.path("v0002") / "model.safetensors").unlink()
    with pytest.raises(RegistryCorruptError, match=r"model\.safetensors.*missing"):
        registry.load("v0002")
