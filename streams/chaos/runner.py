"""``demandcast chaos``'s work: the chaos stack up, the slice loaded, each scenario run in
turn (its own namespace), the stack down; one report."""

from __future__ import annotations

import random
import shutil
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.chaos.scenarios import SCENARIOS, ChaosContext, Scenario
from streams.chaos.stack import DEFAULT_PORTS, ChaosStack, chaos_settings
from streams.chaos.workload import load_slice
from streams.settings import Settings


@dataclass
class ChaosOptions:
    log: Path
    events: int = 30_000
    malformed: int = 10_000
    seed: int = 17
    ports: tuple[int, int, int] = DEFAULT_PORTS
    workdir: Path | None = None
    keep: bool = False


def run_chaos(
    settings: Settings,
    names: Sequence[str],
    opts: ChaosOptions,
    on_scenario: Callable[[dict[str, Any], list[str]], None] | None = None,
) -> dict[str, Any]:
    """Run the named scenarios (all, in order, when none is named); return
    ``{"scenarios": [...], "ok": ..., "problems": {name: [...]}}``. ``ok`` is false when
    any scenario lost or double-counted anything, or had another problem."""
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    chosen = [n for n in SCENARIOS if n in names] if names else list(SCENARIOS)
    root = opts.workdir or Path(tempfile.mkdtemp(prefix="demandcast-chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    s = chaos_settings(settings, root, opts.ports)
    stack = ChaosStack(s)
    results: list[dict[str, Any]] = []
    problems: dict[str, list[str]] = {}
    ctx: ChaosContext | None = None
    try:
        stack.up()
        ctx = ChaosContext(
            s,
            stack,
            load_slice(opts.log, opts.events),
            root,
            random.Random(opts.seed),
            opts.malformed,
        )
        for name in chosen:
            run: Scenario | None = None
            found: list[str] = []
            ctx.current = None
            try:
                SCENARIOS[name](ctx)
                run = ctx.current
                assert run is not None
                result = run.finish(len(ctx.events))
                found = run.problems
            except Exception as exc:
                run = ctx.current  # a scenario that failed half-way: its processes stop
                result = {"name": name, "error": f"{type(exc).__name__}: {exc}"}
                found = [*(run.problems if run is not None else []), traceback.format_exc()]
                if run is not None:
                    _stop(run)
            finally:
                if run is not None:
                    try:
                        run.cleanup()
                    except Exception as exc:  # a broker down after a failed scenario
                        found = [*found, f"cleanup failed: {exc}"]
            results.append(result)
            if found:
                problems[name] = found
            if on_scenario is not None:
                on_scenario(result, found)
    finally:
        if ctx is not None and ctx.current is not None:  # interrupted mid-scenario
            _stop(ctx.current)
        stack.down()
        if not opts.keep:
            shutil.rmtree(root, ignore_errors=True)
    return {"scenarios": results, "ok": not problems, "problems": problems}


def _stop(run: Scenario) -> None:
    """Stop a scenario's monitor and processes (those already stopped are left)."""
    run.monitor.stop()
    for child in (run.forecaster, run.second, run.worker):
        if child is not None:
            child.stop()
