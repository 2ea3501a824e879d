from __future__ import annotations

import numpy as np

from models.evaluation import Evaluation
from updater.evaluation import decide, season_of


def ev(wql: float, mase: float, observed: int = 500) -> Evaluation:
    return Evaluation(
        mase=mase,
        wql=wql,
        wape=0.0,
        bias=0.0,
        coverage80=0.8,
        quantile_coverage={},
        row_mase=np.array([mase]),
        observed=observed,
    )


RULE = {"wql_margin": 0.02, "mase_tolerance": 0.05, "min_sku_days": 100}


def test_promotes_a_clearly_better_candidate() -> None:
    v = decide(ev(1.0, 1.0), ev(0.9, 1.0), **RULE)
    assert v.promote and "0.9000" in v.reason


def test_rejects_a_wql_gain_below_the_margin() -> None:
    v = decide(ev(1.0, 1.0), ev(0.99, 0.9), **RULE)
    assert not v.promote and "WQL" in v.reason


def test_rejects_a_mase_worse_beyond_the_tolerance() -> None:
    assert decide(ev(1.0, 1.0), ev(0.8, 1.04), **RULE).promote
    v = decide(ev(1.0, 1.0), ev(0.8, 1.06), **RULE)
    assert not v.promote and "MASE" in v.reason


def test_rejects_too_few_sku_days_and_undefined_figures() -> None:
    v = decide(ev(1.0, 1.0), ev(0.5, 0.5, observed=99), **RULE)
    assert not v.promote and "fewer than 100" in v.reason
    assert not decide(ev(1.0, 1.0), ev(float("nan"), 1.0), **RULE).promote
    assert not decide(ev(1.0, 1.0), ev(0.5, float("nan")), **RULE).promote
    # no MASE scale on the champion either (a short history): WQL decides
    assert decide(ev(1.0, float("nan")), ev(0.5, float("nan")), **RULE).promote


def test_season_needs_two_weeks() -> None:
    assert season_of(13) == 1 and season_of(14) == 7
