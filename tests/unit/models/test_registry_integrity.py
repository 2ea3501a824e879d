"""Registry integrity: a version whose files differ from the fingerprint in its metadata is
refused (promote, the forecast worker's loader), and so is any path outside the registry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from models.exceptions import FingerprintMismatchError, RegistryError, RegistryPathError
from models.pipeline import TransformerForecaster
from models.registry import FINGERPRINT, ModelRegistry, fingerprint

from .conftest import TINY_MODEL


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    forecaster = TransformerForecaster.from_pretrained(TINY_MODEL, device="cpu")
    reg = ModelRegistry(tmp_path / "registry")
    reg.register(forecaster)  # v0001, the champion
    reg.register(forecaster)  # v0002
    return reg


def _tamper_weights(path: Path) -> None:
    """Flip one byte inside the tensor data: still valid safetensors, another model."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_register_records_every_file_in_the_fingerprint(registry: ModelRegistry) -> None:
    meta = registry.metadata("v0002")
    assert set(meta[FINGERPRINT]) == {"config.json", "model.safetensors"}
    assert meta[FINGERPRINT] == fingerprint(registry.path("v0002"))
    registry.promote("v0002")  # an untouched version passes
    assert registry.champion() == "v0002"


def test_tampered_weights_are_refused_by_promote(registry: ModelRegistry) -> None:
    weights = registry.path("v0002") / "model.safetensors"
    _tamper_weights(weights)
    # the file still reads as safetensors: only the fingerprint tells
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as fh:
        assert list(fh.keys())
    with pytest.raises(FingerprintMismatchError) as info:
        registry.promote("v0002")
    message = str(info.value)
    assert "v0002" in message and str(weights) in message and "fingerprint" in message
    assert registry.champion() == "v0001"  # the pointer did not move


@pytest.mark.parametrize("change", ["config", "extra_file", "missing_file"])
def test_other_file_changes_are_refused(registry: ModelRegistry, change: str) -> None:
    p = registry.path("v0002")
    if change == "config":
        cfg = json.loads((p / "config.json").read_text())
        cfg["context_length"] = int(cfg.get("context_length", 8)) + 1
        (p / "config.json").write_text(json.dumps(cfg))
        named = p / "config.json"
    elif change == "extra_file":
        named = p / "model.safetensors.index.json"
        named.write_text("{}")
    else:
        meta = json.loads((p / "metadata.json").read_text())
        meta[FINGERPRINT]["generation_config.json"] = "0" * 64
        (p / "metadata.json").write_text(json.dumps(meta))
        named = p / "generation_config.json"
    with pytest.raises(FingerprintMismatchError, match="v0002") as info:
        registry.promote("v0002")
    assert str(named) in str(info.value)


def test_tampered_champion_is_refused_by_the_forecast_worker_loader(
    registry: ModelRegistry,
) -> None:
    from streams.serving.model_holder import load_version

    served = load_version(registry.root, None, "cpu")
    assert served.version == "v0001"
    _tamper_weights(registry.path("v0001") / "model.safetensors")
    with pytest.raises(FingerprintMismatchError, match=r"v0001.*model\.safetensors"):
        load_version(registry.root, None, "cpu")
    with pytest.raises(FingerprintMismatchError, match="v0001"):
        registry.load_champion(device="cpu")


def test_version_without_a_fingerprint_still_loads(registry: ModelRegistry) -> None:
    """Versions registered before fingerprints existed are not refused for lacking one."""
    meta_path = registry.path("v0002") / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta[FINGERPRINT]
    meta_path.write_text(json.dumps(meta))
    registry.promote("v0002")
    assert registry.champion() == "v0002"


@pytest.mark.parametrize(
    "name", ["../v0001", "v0001/../../outside", "/etc", "..", "v0001\n", "versions/v0001"]
)
def test_version_names_that_are_paths_are_refused(registry: ModelRegistry, name: str) -> None:
    with pytest.raises(RegistryPathError, match="refused model version"):
        registry.promote(name)
    with pytest.raises(RegistryPathError):
        registry.load(name, device="cpu")
    assert registry.champion() == "v0001"


@pytest.mark.parametrize("value", ["../../outside", "/tmp/model", "v0002/../../x"])
def test_pointer_naming_a_path_is_refused(
    registry: ModelRegistry, tmp_path: Path, value: str
) -> None:
    from streams.serving.model_holder import load_version

    registry.pointer.write_text(json.dumps({"champion": value, "previous": []}))
    with pytest.raises(RegistryError, match="not a version name"):
        registry.champion()
    with pytest.raises(RegistryError, match="not a version name"):
        load_version(registry.root, None, "cpu")
    registry.pointer.write_text(json.dumps({"champion": "v0001", "previous": [value]}))
    with pytest.raises(RegistryError, match="not a version name"):
        registry.rollback()


def test_symlinks_out_of_the_registry_are_refused(registry: ModelRegistry, tmp_path: Path) -> None:
    # a version directory that is a link to a directory elsewhere
    outside = tmp_path / "elsewhere"
    os.rename(registry.path("v0002"), outside)
    (registry.versions_dir / "v0002").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RegistryPathError, match="outside the registry directory"):
        registry.promote("v0002")
    # a file of a version that is a link out of it (the fingerprint would even match)
    weights = registry.path("v0001") / "model.safetensors"
    target = tmp_path / "weights.safetensors"
    os.rename(weights, target)
    weights.symlink_to(target)
    with pytest.raises(RegistryPathError, match="outside the version directory"):
        registry.load("v0001", device="cpu")


def test_model_promote_command_refuses_a_tampered_version(registry: ModelRegistry) -> None:
    from types import SimpleNamespace

    import typer
    from typer.testing import CliRunner

    from demandcast.cli_models import register

    app = typer.Typer()
    settings = SimpleNamespace(model_registry=registry.root, device="cpu", holiday_country="GB")
    register(app, lambda: settings)
    weights = registry.path("v0002") / "model.safetensors"
    _tamper_weights(weights)
    res = CliRunner().invoke(app, ["model", "promote", "v0002"])
    assert res.exit_code == 4, res.output  # ExitCode.MODEL
    assert "v0002" in res.output and "model.safetensors" in res.output
    assert "fingerprint" in res.output
    res = CliRunner().invoke(app, ["model", "promote", "../v0001"])
    assert res.exit_code == 4 and "not a version name" in res.output
    assert registry.champion() == "v0001"
