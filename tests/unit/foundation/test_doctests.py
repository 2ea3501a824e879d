"""The examples in the README and in the docstrings run as written."""

from __future__ import annotations

import doctest
from pathlib import Path

import schemas
import schemas._base

REPO = Path(__file__).resolve().parents[3]


def test_readme_examples() -> None:
    result = doctest.testfile(str(REPO / "README.md"), module_relative=False)
    assert result.attempted > 0 and result.failed == 0


def test_schema_docstring_examples() -> None:
    for module in (schemas, schemas._base):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
