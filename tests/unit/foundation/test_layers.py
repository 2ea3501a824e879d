"""The layer contract of `make lint` (import-linter, `[tool.importlinter]` in pyproject.toml).

`schemas` <- `models` <- `streams` <- `updater` <- `demandcast`: each package imports only
the ones to its right. The check runs on a copy of the packages, so a test can plant a
reversed import and see the contract break.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ("schemas", "models", "streams", "updater", "demandcast")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "pyproject.toml"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_the_layer_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("models/_reversed.py", "streams.settings"),
        ("schemas/_reversed.py", "models.metrics"),
        ("streams/_reversed.py", "updater"),
        ("updater/_reversed.py", "demandcast.cli"),
    ],
)
def test_a_reversed_import_breaks_the_contract(tree: Path, module: str, imported: str) -> None:
    (tree / module).write_text(f"def late() -> None:\n    import {imported}  # noqa: F401\n")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert f"{module[:-3].replace('/', '.')} -> {imported}" in result.stdout
