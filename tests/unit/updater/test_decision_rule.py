from __future__ import annotations

import numpy as np

from models.evaluation import Evaluation
from updater.evaluation import Verdict, decide, season_of


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


def rule(champion: Evaluation, candidate: Evaluation) -> Verdict:
    return decide(champion, candidate, wql_margin=0.02, mase_tolerance=0.05, min_sku_days=100)


def test_promotes_a_clearly_better_candidate() -> None:
    v = rule(ev(1.0, 1.0), ev(0.9, 1.0))
    assert v.promote and "0.9000" in v.reason


def test_rejects_a_wql_gain_below_the_margin() -> None:
    v = rule(ev(1.0, 1.0), ev(0.99, 0.9))
    assert not v.promote and "WQL" in v.reason


def test_rejects_a_mase_worse_beyond_the_tolerance() -> None:
    assert rule(ev(1.0, 1.0), ev(0.8, 1.04)).promote
    v = rule(ev(1.0, 1.0), ev(0.8, 1.06))
    assert not v.promote and "MASE" in v.reason


def test_rejects_too_few_sku_days_and_undefined_figures() -> None:
    v = rule(ev(1.0, 1.0), ev(0.5, 0.5, observed=99))
    assert not v.promote and "fewer than 100" in v.reason
    assert not rule(ev(1.0, 1.0), ev(float("nan"), 1.0)).promote
    assert not rule(ev(1.0, 1.0), ev(0.5, float("nan"))).promote
    # no MASE scale on the champion either (a short history): WQL decides
    assert rule(ev(1.0, float("nan")), ev(0.5, float("nan"))).promote


def test_season_needs_two_weeks() -> None:
    assert season_of(13) == 1 and season_of(14) == 7
