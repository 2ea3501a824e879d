"""The one definition of the derived covariates (models/covariates.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.covariates import (
    PlannedPromotion,
    price_rel,
    price_rel_ahead,
    promotion_covariates,
    reference_price,
    unit_price,
)
from models.data import uci_to_long
from models.exceptions import InputError

DAY_MS = 86_400_000


def test_unit_price_is_nan_where_nothing_sold() -> None:
    p = unit_price(np.array([[2.0, 0.0, 4.0]]), np.array([[5.0, 0.0, 6.0]]))
    assert p[0, 0] == 2.5 and np.isnan(p[0, 1]) and p[0, 2] == 1.5


def test_the_reference_is_the_median_of_the_periods_before_never_the_period_itself() -> None:
    price = np.array([[2.0, 2.0, np.nan, 4.0, 10.0, 1.0]])
    ref = reference_price(price, lookback=3)
    assert np.isnan(ref[0, 0])  # nothing before the first period
    np.testing.assert_allclose(ref[0, 1:], [2.0, 2.0, 2.0, 3.0, 7.0])


def test_price_rel_by_hand() -> None:
    units = np.array([[1.0, 2.0, 0.0, 1.0, 3.0]])
    revenue = np.array([[2.0, 4.0, 0.0, 4.0, 3.0]])  # prices 2, 2, -, 4, 1
    rel = price_rel(units, revenue, lookback=28)[0]
    np.testing.assert_allclose(rel, [1, 1, 1, 2, 0.5])  # the last's ref: median(2, 2, 4)


def test_price_rel_ahead_is_the_last_price_over_the_reference_at_the_origin() -> None:
    units = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    revenue = np.array([[2.0, 2.0, 4.0], [0.0, 0.0, 0.0]])
    ahead = price_rel_ahead(units, revenue, [3.0, 5.0], lookback=2)
    np.testing.assert_allclose(ahead, [1.0, 1.0])  # ref = median(2, 4) = 3; no sales: 1.0
    assert price_rel_ahead(units, revenue, [None, None], lookback=2).tolist() == [1.0, 1.0]


def test_a_bad_lookback_is_an_input_error() -> None:
    with pytest.raises(InputError, match="lookback of at least 1"):
        reference_price(np.ones((1, 3)), lookback=0)


def test_promotions_flag_every_period_their_planned_interval_overlaps() -> None:
    first = 1_000 * DAY_MS
    promos = [
        [PlannedPromotion(first + DAY_MS + DAY_MS // 2, first + 3 * DAY_MS + 1, 0.2)],
        [
            PlannedPromotion(first - 5 * DAY_MS, first + 2 * DAY_MS, 0.1),  # ends at midnight
            PlannedPromotion(first + DAY_MS, first + 2 * DAY_MS, 0.3),
        ],
        [PlannedPromotion(first + 9 * DAY_MS, first + 12 * DAY_MS, 0.5)],  # after the window
    ]
    flag, depth = promotion_covariates(promos, first, DAY_MS, 5)
    assert flag.tolist() == [[0, 1, 1, 1, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    expected = [[0, 0.2, 0.2, 0.2, 0], [0.1, 0.3, 0, 0, 0], [0.0] * 5]
    np.testing.assert_allclose(depth, np.array(expected))


def test_the_table_builder_uses_the_same_definition() -> None:
    lines = pd.DataFrame(
        {
            "InvoiceNo": ["1", "2", "3", "4"],
            "StockCode": ["A", "A", "A", "A"],
            "Quantity": [2.0, 1.0, 4.0, 1.0],
            "InvoiceDate": pd.to_datetime(
                ["2011-01-03 10:00", "2011-01-04 10:00", "2011-01-06 09:00", "2011-01-06 15:00"]
            ),
            "UnitPrice": [1.0, 1.0, 0.5, 3.0],
        }
    )
    table = uci_to_long(lines, "D")
    # day prices: 1, 1, -, (2 + 3) / 5 = 1.0 → reference 1 → all 1; day 3 has no sales
    assert table["price_rel"].tolist() == [1.0, 1.0, 1.0, 1.0]
    lines.loc[3, "UnitPrice"] = 8.0  # day 4: (2 + 8) / 5 = 2.0 over a reference of 1.0
    assert uci_to_long(lines, "D")["price_rel"].tolist() == [1.0, 1.0, 1.0, 2.0]
