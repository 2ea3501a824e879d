"""UCI cleaning rules, the long-table reader and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.data import (
    NON_PRODUCT_CODES,
    clean_uci_lines,
    is_cancellation,
    is_product_code,
    panel_from_frame,
    parse_customer_id,
    read_long_table,
    uci_to_long,
    write_long_table,
)
from models.exceptions import CovariateError, DataError

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
LOG = HEADER + "\n".join(
    [
        "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
        "536366,85123A,HEART,4,2010-12-01 09:00:00,2.55,,United Kingdom",
        "536367,POST,POSTAGE,1,2010-12-01 09:10:00,18.0,12583.0,France",
        "536368,gift_0001_20,VOUCHER,1,2010-12-01 09:20:00,20.0,12583.0,France",
        "C536369,85123A,HEART,-6,2010-12-02 10:00:00,2.55,17850.0,United Kingdom",
        "536370,22423,CAKESTAND,2,2010-12-03 10:00:00,12.75,13047.0,United Kingdom",
        "536371,22423,CAKESTAND,-3,2010-12-03 11:00:00,0.0,,United Kingdom",
        "536372,85123A,HEART,10,2010-12-04 12:00:00,2.04,17850.0,United Kingdom",
        "536373,BANK CHARGES,Bank Charges,1,2010-12-04 12:00:00,15.0,,United Kingdom",
    ]
)


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    p = tmp_path / "log.csv"
    p.write_text(LOG + "\n")
    return p


def test_cleaning_rules() -> None:
    assert not is_product_code("POST") and not is_product_code("post ")
    assert not is_product_code("GIFT_0001_20") and not is_product_code("DCGSSBOY")
    assert is_product_code("85123A") and is_product_code("22423")
    assert {"M", "DOT", "BANK CHARGES", "AMAZONFEE", "C2", "D", "S", "CRUK", "PADS"} <= (
        NON_PRODUCT_CODES
    )
    assert is_cancellation("C536369", -6) and is_cancellation("536371", -3)
    assert not is_cancellation("536365", 6)
    assert parse_customer_id("17850.0") == "17850"
    assert parse_customer_id(17850.0) == "17850"
    assert parse_customer_id("") is None and parse_customer_id(float("nan")) is None


def test_uci_to_long_table(log_file: Path) -> None:
    raw = pd.read_csv(log_file, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str})
    lines = clean_uci_lines(raw)
    assert set(lines["StockCode"]) == {"85123A", "22423"}
    assert lines["CustomerID"].dropna().tolist() == ["17850", "13047", "17850"]
    long = uci_to_long(lines, "D")
    heart = long[long["series_id"] == "85123A"].set_index("timestamp")["target"]
    # cancellation on 12-02 does not subtract; days without sales are zeros
    assert heart.to_dict() == {
        pd.Timestamp("2010-12-01"): 10.0,
        pd.Timestamp("2010-12-02"): 0.0,
        pd.Timestamp("2010-12-03"): 0.0,
        pd.Timestamp("2010-12-04"): 10.0,
    }
    cake = long[long["series_id"] == "22423"]
    assert cake["timestamp"].min() == pd.Timestamp("2010-12-03")  # from its first sale on
    assert cake["target"].tolist() == [2.0, 0.0]
    price = long[long["series_id"] == "85123A"]["price_rel"].tolist()
    assert price[0] == pytest.approx(1.0) and price[-1] == pytest.approx(2.04 / 2.55, abs=1e-3)
    # 12-02 saw only a cancellation: the shop sold nothing that day
    assert long[long["series_id"] == "85123A"]["shop_open"].tolist() == [1.0, 0.0, 1.0, 1.0]
    top = uci_to_long(lines, "D", top=1)
    assert set(top["series_id"]) == {"85123A"}
    whole = uci_to_long(lines, "D", from_log_start=True)
    cake = whole[whole["series_id"] == "22423"]
    assert cake["target"].tolist() == [0.0, 0.0, 2.0, 0.0]  # zeros before its first sale
    assert cake["price_rel"].tolist()[:2] == [1.0, 1.0]


def test_long_table_round_trip(log_file: Path, tmp_path: Path) -> None:
    lines = clean_uci_lines(pd.read_csv(log_file, dtype=str))
    out = write_long_table(uci_to_long(lines, "D"), tmp_path / "t.csv")
    panel = read_long_table(out, "D", known="price_rel,shop_open")
    assert panel.series_ids == ["22423", "85123A"]
    assert panel.target.shape == (2, 4)
    np.testing.assert_array_equal(panel.observed[0], [False, False, True, True])
    assert panel.target[1].tolist() == [10.0, 0.0, 0.0, 10.0]
    assert sorted(panel.known) == ["price_rel", "shop_open"]
    assert len(panel.fingerprint()) == 16
    weekly = read_long_table(out, "W")
    assert weekly.length == 1 and weekly.target[1, 0] == 20.0


def test_unknown_covariate(log_file: Path, tmp_path: Path) -> None:
    lines = clean_uci_lines(pd.read_csv(log_file, dtype=str))
    out = write_long_table(uci_to_long(lines, "D"), tmp_path / "t.csv")
    with pytest.raises(CovariateError, match=r"promo.*available: \['price_rel', 'shop_open'\]"):
        read_long_table(out, "D", known="promo")


def test_known_covariates_must_be_numbers(tmp_path: Path) -> None:
    """A text-valued known covariate (an event name) is an error, not silently zeros; flags
    written as true/false (with gaps) are read as 1/0."""
    table = tmp_path / "events.csv"
    table.write_text(
        "series_id,timestamp,target,event,holiday\n"
        "a,2024-01-01,1,,TRUE\n"
        "a,2024-01-02,2,SuperBowl,\n"
        "a,2024-01-03,3,,false\n"
    )
    with pytest.raises(CovariateError, match=r"'event'.*'SuperBowl'.*0/1 columns"):
        read_long_table(table, "D", known="event")
    panel = read_long_table(table, "D", known="holiday", static="event")
    assert panel.known["holiday"].tolist() == [[1.0, 1.0, 0.0]]  # the gap forward-filled


def test_empty_and_malformed_tables(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("series_id,timestamp,target\n")
    with pytest.raises(DataError, match="empty"):
        read_long_table(empty, "D")
    nothing = tmp_path / "nothing.csv"
    nothing.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_long_table(nothing, "D")
    with pytest.raises(DataError, match="lacks the columns"):
        panel_from_frame(pd.DataFrame({"series_id": ["a"], "target": [1]}), "D")
    with pytest.raises(DataError, match="non-numeric"):
        panel_from_frame(
            pd.DataFrame({"series_id": ["a"], "timestamp": ["2024-01-01"], "target": [None]}), "D"
        )
    with pytest.raises(DataError, match="unknown frequency"):
        panel_from_frame(
            pd.DataFrame({"series_id": ["a"], "timestamp": ["2024-01-01"], "target": [1]}), "Q"
        )
    with pytest.raises(DataError, match="does not exist"):
        read_long_table(tmp_path / "missing.csv", "D")


def test_empty_log_is_an_error(tmp_path: Path) -> None:
    only_post = tmp_path / "post.csv"
    only_post.write_text(HEADER + "1,POST,POSTAGE,1,2010-12-01 09:10:00,18.0,12583.0,France\n")
    from models.data import read_uci_log

    with pytest.raises(DataError, match="no product sales"):
        uci_to_long(read_uci_log(only_post), "D")
