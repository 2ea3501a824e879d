"""Command-line options that several commands share (one definition each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object")]
UciLog = Annotated[
    Path | None,
    typer.Option("--log", help="UCI log (default: ../shared/data/online_retail)"),
]
DemoReportDir = Annotated[
    Path, typer.Option("--report-dir", help="The demo's report directory (training table)")
]
