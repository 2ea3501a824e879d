"""The evaluation module: scores at origins against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from models import metrics
from models.evaluation import Scorer, evaluate, score
from models.exceptions import InputError

LEVELS = [0.1, 0.5, 0.9]


def _block() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    history = np.array([[1.0, 2, 3, 4, 1, 2, 3, 5], [0.0, 0, 0, 0, 2, 2, 2, 2]])
    actual = np.array([[4.0, 0.0], [2.0, 3.0]])
    q = np.array([[[2.0, 3.0, 5.0], [1.0, 1.0, 2.0]], [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]])
    return history, actual, q


def test_evaluate_by_hand() -> None:
    history, actual, q = _block()
    ev = evaluate(actual, q, LEVELS, history=history, season=4)
    # scales: row 0 (see test_metrics) 0.25; row 1 |2-0| four times over 4 pairs = 2
    # row MASE: |4-3| + |0-1| = 2 / 2 steps / 0.25 = 4; |2-2| + |3-2| = 1 / 2 / 2 = 0.25
    np.testing.assert_allclose(ev.row_mase, [4.0, 0.25])
    assert ev.mase == pytest.approx(2.125)
    assert ev.wape == pytest.approx((1 + 1 + 0 + 1) / 9)
    assert ev.wql == pytest.approx(metrics.wql(actual, q, LEVELS))
    # inside [q0.1, q0.9]: 4 in [2, 5], 0 not in [1, 2], 2 in [1, 3], 3 in [1, 3]
    assert ev.coverage80 == pytest.approx(0.75)
    # at or below q0.1: 0 <= 1 only; q0.5: 0 <= 1, 2 <= 2; q0.9: 4, 0, 2, 3 all
    assert ev.quantile_coverage == pytest.approx({0.1: 0.25, 0.5: 0.5, 0.9: 1.0})
    assert ev.observed == 4
    assert ev.summary() == score(actual, q, LEVELS, np.array([0.25, 2.0]))
    assert set(ev.summary()) == {"mase", "wql", "wape", "bias", "coverage80"}


def test_masks_equal_missing_actuals() -> None:
    """``observed=False`` is a missing actual (like NaN) and so is an unobserved history
    step for the scale."""
    history, actual, q = _block()
    observed = np.array([[True, False], [True, True]])
    masked = evaluate(actual, q, LEVELS, history=history, season=4, observed=observed)
    nan = evaluate(np.where(observed, actual, np.nan), q, LEVELS, history=history, season=4)
    assert masked.summary() == nan.summary() and masked.observed == 3
    hist_obs = np.ones_like(history, dtype=bool)
    hist_obs[1, :4] = False  # the zeros before row 1's first sale were not observed
    # row 1 then has no lag-4 pair: lag 1 gives a scale of 0, so no MASE
    ev = evaluate(actual, q, LEVELS, history=history, history_observed=hist_obs, season=4)
    assert np.isnan(ev.row_mase[1]) and ev.mase == pytest.approx(4.0)


def test_scorer_stacks_origins_with_their_own_history() -> None:
    """Blocks at two origins: each row scaled by the history before its origin; a shorter
    horizon counts as missing actuals."""
    history, actual, q = _block()
    scorer = Scorer(LEVELS, season=4)
    scorer.add(actual, q, history)
    scorer.add(actual[:1, :1], q[:1, :1], history[1:2, :6])  # an earlier origin, 1 step
    ev = scorer.evaluation()
    scale_early = metrics.seasonal_naive_scale(history[1:2, :6], 4)
    stacked_actual = np.vstack([actual, [[4.0, np.nan]]])
    stacked_q = np.concatenate([q, np.pad(q[:1, :1], ((0, 0), (0, 1), (0, 0)), "edge")])
    want = evaluate(stacked_actual, stacked_q, LEVELS, scale=np.array([0.25, 2.0, scale_early[0]]))
    assert ev.summary() == want.summary()
    assert ev.observed == 5 and len(ev.row_mase) == 3


def test_errors_say_what_to_pass() -> None:
    history, actual, q = _block()
    with pytest.raises(InputError, match="either history"):
        evaluate(actual, q, LEVELS)
    with pytest.raises(InputError, match="either history"):
        evaluate(actual, q, LEVELS, history=history, season=4, scale=np.ones(2))
    with pytest.raises(InputError, match="season"):
        evaluate(actual, q, LEVELS, history=history)
    with pytest.raises(InputError, match=r"quantiles must be .*\(2, 2, 3\)"):
        evaluate(actual, q[..., :2], LEVELS, scale=np.ones(2))
    with pytest.raises(InputError, match="one row per forecast"):
        evaluate(actual, q, LEVELS, history=history[:1], season=4)
    with pytest.raises(InputError, match="observed must"):
        evaluate(actual, q, LEVELS, scale=np.ones(2), observed=np.ones((2, 3), bool))
    with pytest.raises(InputError, match="nothing to score"):
        Scorer(LEVELS, 4).evaluation()
