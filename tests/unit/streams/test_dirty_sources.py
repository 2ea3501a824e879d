"""Source files with real dirt: truncated last rows, wrong headers, mixed encodings.

Every bad row must be rejected with its reason (counted by ``load_events`` and in the replay
summary), never read with a column missing; a file that is not the format at all is a
:class:`ReplayError` that names the columns, not a crash.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path
from typing import Any

import pytest

from schemas import ClickEvent, Event, OrderEvent
from streams.exceptions import ReplayError
from streams.history.replay import load_events, replay
from streams.history.sources import Rejected, iter_source

from .helpers import settings

REES46_HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)
REES46_ROWS = [
    "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,"
    "72d76fde-8bb3-4e00-8c23-a032dfed738c",
    "2019-10-01 00:00:04 UTC,cart,3900821,2053013552326770905,appliances.environment."
    "water_heater,aqua,33.20,554748717,9333dfbd-b87a-4708-9857-6336556b0fcc",
]
# A REES46 file cut mid-row: the last row stops inside user_id (8 of 9 fields).
REES46_CUT = "2019-10-01 00:00:05 UTC,purchase,17200506,2053013559792632471,,,543.10,5191"

UCI_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
UCI_ROWS = [
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom",
    "536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,2010-12-01 08:34:00,1.69,13047.0,United Kingdom",
]


def split(items: list[Event | Rejected]) -> tuple[list[Event], list[Rejected]]:
    events = [i for i in items if not isinstance(i, Rejected)]
    return events, [i for i in items if isinstance(i, Rejected)]


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


# --- a truncated last line ------------------------------------------------------------


def test_rees46_row_cut_mid_file_end_is_rejected_as_truncated(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "\n".join([REES46_HEADER, *REES46_ROWS, REES46_CUT]))
    events, rejected = split(list(iter_source(path, "rees46")))
    assert [(r.row, r.reason) for r in rejected] == [(4, "truncated row")]
    assert "8 of 9 fields" in rejected[0].detail
    assert len(events) == 2
    # the cut row never becomes a click: no user id cut short, no session made up from it
    assert all(isinstance(e, ClickEvent) and e.user_id != "5191" for e in events)
    assert [e.session_id for e in events if isinstance(e, ClickEvent)] == [
        "72d76fde-8bb3-4e00-8c23-a032dfed738c",
        "9333dfbd-b87a-4708-9857-6336556b0fcc",
    ]


def test_rees46_short_or_long_rows_inside_the_file_are_wrong_column_counts(
    tmp_path: Path,
) -> None:
    short = REES46_CUT  # followed by a line break: not at the end of the file
    long = REES46_ROWS[0].replace(",shiseido,", ",shiseido,extra,")  # an unquoted comma
    path = write(tmp_path / "r.csv", "\n".join([REES46_HEADER, short, long, REES46_ROWS[1]]) + "\n")
    events, rejected = split(list(iter_source(path, "rees46")))
    assert [(r.row, r.reason) for r in rejected] == [
        (2, "wrong column count"),
        (3, "wrong column count"),
    ]
    assert rejected[0].detail == "8 fields, the header has 9"
    assert rejected[1].detail == "10 fields, the header has 9"
    assert len(events) == 1


def test_a_complete_last_row_without_a_line_break_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "\n".join([REES46_HEADER, *REES46_ROWS]))
    events, rejected = split(list(iter_source(path, "rees46")))
    assert rejected == [] and len(events) == 2


def test_uci_row_cut_at_the_end_is_rejected_as_truncated(tmp_path: Path) -> None:
    cut = UCI_ROWS[2][: UCI_ROWS[2].index(",1.69")]  # stops after InvoiceDate
    path = write(tmp_path / "u.csv", "\n".join([UCI_HEADER, *UCI_ROWS[:2], cut]))
    loaded = load_events(path, "uci")
    assert [e.order_id for _, e in loaded.events if isinstance(e, OrderEvent)] == [
        "536365",
        "536366",
    ]
    assert dict(loaded.rejected) == {"truncated row": 1}
    assert loaded.rejected_examples() == {
        "truncated row": "line 4: 5 of 8 fields and no line break at the end of the file"
    }


def test_retailrocket_row_cut_at_the_end_is_rejected_as_truncated(tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.csv",
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,992329,addtocart,2486",
    )
    events, rejected = split(list(iter_source(path, "retailrocket")))
    assert len(events) == 1 and [r.reason for r in rejected] == ["truncated row"]


def test_jsonl_line_cut_at_the_end_is_rejected_as_truncated(tmp_path: Path) -> None:
    good = (
        '{"type":"click","event_id":"a","event_time":"2011-01-01T09:00:00Z","action":"view",'
        '"session_id":"s","sku":"A"}'
    )
    path = write(tmp_path / "e.jsonl", good + "\n" + good.replace('"a"', '"b"')[:60])
    events, rejected = split(list(iter_source(path, "jsonl")))
    assert [e.event_id for e in events] == ["a"]
    assert [(r.row, r.reason) for r in rejected] == [(2, "truncated row")]
    # a complete last line without a line break is an event; a bad complete one keeps its reason
    path = write(tmp_path / "f.jsonl", good + "\n" + good.replace('"view"', '"wink"'))
    events, rejected = split(list(iter_source(path, "jsonl")))
    assert [r.reason for r in rejected] == ["invalid click.action"] and len(events) == 1
    path = write(tmp_path / "g.jsonl", good)
    assert [e.event_id for e in split(list(iter_source(path, "jsonl")))[0]] == ["a"]


def test_a_cut_gzip_file_keeps_its_rows_up_to_the_cut(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = [
        f"5{i:05d},{rng.randint(10000, 99999)},THING {rng.random()},{rng.randint(1, 50)},"
        f"2010-12-01 08:{i % 60:02d}:00,1.25,17850.0,United Kingdom"
        for i in range(3000)
    ]
    data = gzip.compress(("\n".join([UCI_HEADER, *rows]) + "\n").encode())
    path = write(tmp_path / "u.csv.gz", data[: len(data) // 2])  # a download cut halfway
    loaded = load_events(path, "uci")
    assert loaded.rejected["truncated gzip file"] == 1
    assert 500 < len(loaded.events) < 3000
    # what was read is the file's first rows, each complete
    orders = [e for _, e in loaded.events if isinstance(e, OrderEvent)]
    assert sorted(o.order_id for o in orders) == [f"5{i:05d}" for i in range(len(orders))]
    # the cut row itself (if any) is rejected, not read short
    assert set(loaded.rejected) <= {"truncated gzip file", "truncated row"}


def test_a_dot_gz_file_that_is_not_gzip_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "u.csv.gz", UCI_HEADER + "\n" + UCI_ROWS[0] + "\n")
    with pytest.raises(ReplayError, match="not a gzip file"):
        list(iter_source(path, "uci"))
    with pytest.raises(ReplayError, match="not a gzip file"):
        list(iter_source(tmp_path / "u.csv.gz", "jsonl"))


# --- a wrong header -------------------------------------------------------------------


def test_rees46_header_without_a_required_column_names_it(tmp_path: Path) -> None:
    header = REES46_HEADER.replace("user_session", "session")
    path = write(tmp_path / "r.csv", "\n".join([header, *REES46_ROWS]) + "\n")
    with pytest.raises(ReplayError) as info:
        list(iter_source(path, "rees46"))
    message = str(info.value)
    assert "not a REES46 CSV" in message
    assert "missing column user_session" in message
    assert "unexpected column session" in message


def test_uci_header_errors_name_the_columns(tmp_path: Path) -> None:
    no_customer = UCI_HEADER.replace(",CustomerID", "")
    path = write(
        tmp_path / "u.csv", no_customer + "\n" + "536365,85123A,X,6,2010-12-01 08:26:00,2.55,UK\n"
    )
    with pytest.raises(
        ReplayError, match=r"not a UCI Online Retail CSV: missing column CustomerID"
    ):
        list(iter_source(path, "uci"))
    twice = UCI_HEADER.replace("Country", "Quantity")
    path = write(tmp_path / "v.csv", twice + "\n")
    with pytest.raises(ReplayError, match="missing column Country; repeated column Quantity"):
        list(iter_source(path, "uci"))
    with pytest.raises(ReplayError, match="is empty"):
        list(iter_source(write(tmp_path / "w.csv", ""), "uci"))


def test_uci_columns_are_found_by_name(tmp_path: Path) -> None:
    # reordered, with an extra column, a UTF-8 byte-order mark (Excel's "CSV UTF-8") and CRLF
    header = (
        "\ufeffCountry,InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,"
        "CustomerID,Note"
    )
    row = "France,536370,22728,ALARM CLOCK BAKELIKE PINK,24,2010-12-01 08:45:00,3.75,12583.0,x"
    path = write(tmp_path / "u.csv", f"{header}\r\n{row}\r\n")
    events, rejected = split(list(iter_source(path, "uci")))
    assert rejected == []
    (order,) = events
    assert isinstance(order, OrderEvent)
    assert (order.order_id, order.sku, order.quantity, order.country) == (
        "536370",
        "22728",
        24,
        "France",
    )
    assert order.customer_id == "12583" and order.unit_price == 3.75


def test_a_repeated_header_inside_the_file_is_rejected(tmp_path: Path) -> None:
    text = "\n".join([REES46_HEADER, REES46_ROWS[0], REES46_HEADER, REES46_ROWS[1]]) + "\n\n"
    events, rejected = split(list(iter_source(write(tmp_path / "r.csv", text), "rees46")))
    assert [(r.row, r.reason) for r in rejected] == [(3, "repeated header")]
    assert len(events) == 2  # the blank line at the end is no row


# --- mixed encodings ------------------------------------------------------------------


def test_a_latin1_line_in_a_utf8_uci_file_is_rejected_not_guessed(tmp_path: Path) -> None:
    utf8 = "536368,22960,JAM MAKING SET WITH JARS CAFÉ,6,2010-12-01 08:34:00,4.25,13047.0,France"
    latin1 = "536369,21756,BATH BUILDING BLOCK WORD CAFÉ,3,2010-12-01 08:35:00,5.95,13047.0,France"
    data = (
        "\n".join([UCI_HEADER, UCI_ROWS[0], utf8]).encode("utf-8")
        + b"\n"
        + latin1.encode("latin-1")
        + b"\n"
        + UCI_ROWS[1].encode()
        + b"\n"
    )
    loaded = load_events(write(tmp_path / "u.csv", data), "uci")
    assert [e.order_id for _, e in loaded.events if isinstance(e, OrderEvent)] == [
        "536365",
        "536366",  # event-time order
        "536368",
    ]
    assert dict(loaded.rejected) == {"invalid UTF-8": 1}
    example = loaded.rejected_examples()["invalid UTF-8"]
    assert example.startswith("line 4: Description: bytes b'\\xc9")
    assert "latin-1 would read 'É" in example


def test_a_latin1_line_in_a_rees46_file_is_rejected(tmp_path: Path) -> None:
    bad = REES46_ROWS[1].replace(",aqua,", ",caf\xe9,").encode("latin-1")
    data = (REES46_HEADER + "\n" + REES46_ROWS[0] + "\n").encode() + bad + b"\n"
    events, rejected = split(list(iter_source(write(tmp_path / "r.csv", data), "rees46")))
    assert len(events) == 1
    assert [(r.row, r.reason) for r in rejected] == [(3, "invalid UTF-8")]
    assert rejected[0].detail.startswith("brand: ")


def test_a_latin1_line_in_a_jsonl_file_is_rejected(tmp_path: Path) -> None:
    good = (
        '{"type":"click","event_id":"a","event_time":"2011-01-01T09:00:00Z","action":"view",'
        '"session_id":"s","sku":"A"}'
    )
    bad = good.replace('"A"', '"CAF\xc9"').replace('"a"', '"b"').encode("latin-1")
    data = b"\xef\xbb\xbf" + good.encode() + b"\n" + bad + b"\n"  # with a byte-order mark
    events, rejected = split(list(iter_source(write(tmp_path / "e.jsonl", data), "jsonl")))
    assert [e.event_id for e in events] == ["a"]
    assert [(r.row, r.reason) for r in rejected] == [(2, "invalid UTF-8")]
    assert "latin-1 would read 'É" in rejected[0].detail


def test_a_header_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    header = REES46_HEADER.replace("brand", "marqu\xe9").encode("latin-1")
    path = write(tmp_path / "r.csv", header + b"\n" + REES46_ROWS[0].encode() + b"\n")
    with pytest.raises(ReplayError, match="missing column brand; unexpected column marqu\ufffd"):
        list(iter_source(path, "rees46"))


# --- the replay summary ---------------------------------------------------------------


def test_replay_summary_counts_each_reason_with_an_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    produced: list[Any] = []

    def fake_produce(_settings: Any, events: list[Any], **_kw: Any) -> dict[str, int]:
        produced.extend(events)
        return {"clicks": len(events)}

    monkeypatch.setattr("streams.history.replay.produce_events", fake_produce)
    monkeypatch.setattr("streams.kafka.admin.ensure_topics", lambda _s: None)
    bad = REES46_ROWS[1].replace(",aqua,", ",caf\xe9,").encode("latin-1")
    data = (
        "\n".join([REES46_HEADER, REES46_ROWS[0], REES46_CUT]).encode()
        + b"\n"
        + bad
        + b"\n"
        + REES46_CUT.encode()
    )
    path = write(tmp_path / "r.csv", data)
    summary = replay(settings(), path, "rees46", progress=False).as_dict()
    assert summary["events_produced"] == 1 and len(produced) == 1
    assert summary["rows_read"] == 4 and summary["rows_rejected"] == 3
    assert summary["rejected"] == {
        "wrong column count": 1,
        "invalid UTF-8": 1,
        "truncated row": 1,
    }
    assert summary["rejected_examples"]["truncated row"] == (
        "line 5: 8 of 9 fields and no line break at the end of the file"
    )
    assert summary["rejected_examples"]["wrong column count"].startswith("line 3: ")
