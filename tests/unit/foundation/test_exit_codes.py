"""Exit codes mean one thing each (demandcast/errors.py); no bare exception escapes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis

import models.exceptions
import schemas
import streams.exceptions
import updater.exceptions
from demandcast import cli
from demandcast.errors import CheckFailed, ExitCode, exit_code_of


def _subclasses(root: type[BaseException]) -> set[type[BaseException]]:
    found = set(root.__subclasses__())
    for cls in list(found):
        found |= _subclasses(cls)
    return found


def test_every_project_error_has_a_meaningful_exit_code() -> None:
    assert models.exceptions and streams.exceptions and updater.exceptions  # registered
    errors = _subclasses(schemas.DemandcastError)
    assert len(errors) >= 10
    for cls in errors:
        code = exit_code_of(BaseException.__new__(cls))
        assert code not in (ExitCode.OK, ExitCode.INTERNAL), cls


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (schemas.SchemaError("bad event", []), ExitCode.BAD_INPUT),
        (models.exceptions.DataError("bad table"), ExitCode.BAD_INPUT),
        (streams.exceptions.ReplayError("bad log"), ExitCode.BAD_INPUT),
        (models.exceptions.RegistryError("no champion"), ExitCode.MODEL),
        (streams.exceptions.StackError("no java"), ExitCode.SERVICE),
        (redis.ConnectionError("refused"), ExitCode.SERVICE),
        (CheckFailed("3 SKUs differ"), ExitCode.CHECK_FAILED),
        (updater.exceptions.NotEnoughHistoryError("12 days"), ExitCode.BAD_INPUT),
        (updater.exceptions.UpdaterBusyError("locked"), ExitCode.SERVICE),
        (updater.exceptions.FineTuneDivergedError("NaN loss"), ExitCode.MODEL),
        (ZeroDivisionError("a bug"), ExitCode.INTERNAL),
        (ValueError("a bug too"), ExitCode.INTERNAL),
    ],
)
def test_exit_code_of(exc: BaseException, code: ExitCode) -> None:
    assert exit_code_of(exc) is code


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(sys, "argv", ["demandcast", *argv])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return int(exited.value.code or 0)


def test_the_cli_exits_with_the_code_of_the_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(monkeypatch, "nosuch") == ExitCode.BAD_INPUT
    missing = str(tmp_path / "missing.csv")
    args = ("backtest", "--data", missing, "--freq", "D", "--horizon", "7", "--windows", "1")
    assert _run(monkeypatch, *args) == ExitCode.BAD_INPUT
    assert f"table {missing} does not exist" in capsys.readouterr().err
    registry = str(tmp_path / "registry")
    assert _run(monkeypatch, "model", "show", "v9", "--registry", registry) == ExitCode.MODEL
    assert "unknown model version 'v9'" in capsys.readouterr().err
    assert _run(monkeypatch, "settings", "--table") == ExitCode.OK


def test_a_bug_prints_its_traceback_and_exits_70(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import models.data

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("division by zero in a test")

    monkeypatch.setattr(models.data, "read_long_table", broken)
    table = tmp_path / "t.csv"
    table.write_text("series_id,timestamp,target\n")
    args = ("backtest", "--data", str(table), "--freq", "D", "--horizon", "7", "--windows", "1")
    assert _run(monkeypatch, *args) == ExitCode.INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: division by zero in a test" in err
    assert "internal error (a bug in demandcast" in err
