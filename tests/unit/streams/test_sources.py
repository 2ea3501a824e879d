from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas import ClickEvent, OrderEvent
from streams.exceptions import ReplayError
from streams.history.replay import load_events
from streams.history.sources import Rejected, iter_source, key_of, topic_of

from .helpers import settings

UCI_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
UCI_ROWS = [
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
    "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom",
    "536370,POST,POSTAGE,3,2010-12-01 08:45:00,18.0,12583.0,France",
    "536414,22139,,56,2010-12-01 11:52:00,0.0,,United Kingdom",
    'C536548,22245,"HOOK, 1 HANGER ,MAGIC GARDEN",-2,2010-12-01 14:33:00,0.85,12472.0,Germany',
    "A563185,B,Adjust bad debt,1,2011-08-12 14:50:00,-11062.06,,United Kingdom",
    "562939,84879,ASSORTED COLOUR BIRD ORNAMENT,8,2011-08-10 16:00:00,1.69,,United Kingdom",
    "562940,gift_0001_20,GIFT VOUCHER,1,2011-08-10 16:05:00,17.0,,United Kingdom",
    "562941,85123a,lower case code,2,2011-08-10 16:06:00,2.95,13000.0,EIRE",
]


def write_uci(path: Path, rows: list[str] = UCI_ROWS) -> Path:
    path.write_text(UCI_HEADER + "\n".join(rows) + "\n")
    return path


def test_uci_importer_handles_the_real_dirt(tmp_path: Path) -> None:
    items = list(iter_source(write_uci(tmp_path / "u.csv"), "uci"))
    events = [i for i in items if isinstance(i, OrderEvent)]
    reasons = sorted(i.reason for i in items if isinstance(i, Rejected))
    assert reasons == sorted(
        [
            "non-product stock code",  # D
            "non-product stock code",  # POST
            "zero unit price (stock adjustment, not a sale)",
            "non-product stock code",  # B (bad debt)
            "non-product stock code",  # gift voucher
        ]
    )
    assert [e.quantity for e in events] == [6, 6, -2, 8, 2]
    first, dup, cancel, summer, lower = events
    assert first.customer_id == "17850" and first.sku == "85123A"
    assert first.event_id != dup.event_id  # two identical real lines are two events
    assert dup.event_id == first.event_id + "-1"
    assert cancel.order_id == "C536548" and cancel.unit_price == 0.85
    assert summer.customer_id is None
    # local UK time: GMT in December, BST in August
    assert first.event_time == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    assert summer.event_time == datetime(2011, 8, 10, 15, 0, tzinfo=UTC)
    assert lower.sku == "85123A"  # codes are upper-cased like models.data does


def test_uci_ids_are_deterministic_and_gzip_is_read(tmp_path: Path) -> None:
    plain = write_uci(tmp_path / "u.csv")
    gz = tmp_path / "u.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    ids = [e.event_id for e in iter_source(plain, "uci") if isinstance(e, OrderEvent)]
    again = [e.event_id for e in iter_source(gz, "uci") if isinstance(e, OrderEvent)]
    assert ids == again and len(set(ids)) == len(ids)


def test_uci_rejects_a_foreign_header(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ReplayError, match="not a UCI"):
        list(iter_source(path, "uci"))


def test_rees46(tmp_path: Path) -> None:
    path = tmp_path / "rees46.csv"
    path.write_text(
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,"
        "user_session\n"
        "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,"
        "72d76fde-8bb3-4e00-8c23-a032dfed738c\n"
        "2019-10-01 00:00:04 UTC,cart,3900821,2053013552326770905,appliances.environment."
        "water_heater,aqua,33.20,554748717,9333dfbd-b87a-4708-9857-6336556b0fcc\n"
        "2019-10-01 00:00:05 UTC,purchase,17200506,2053013559792632471,furniture.living_room."
        "sofa,,543.10,519107250,566511c2-e2e3-422b-b695-cf8e6e792ca8\n"
        "2019-10-01 00:00:06 UTC,wink,1,2,,,1.0,3,s\n"
    )
    items = list(iter_source(path, "rees46"))
    clicks = [i for i in items if isinstance(i, ClickEvent)]
    assert [c.action for c in clicks] == ["view", "cart", "purchase"]
    assert clicks[0].sku == "44600062" and clicks[0].price == 35.79
    assert clicks[0].brand == "shiseido" and clicks[2].brand is None
    assert clicks[1].category_code == "appliances.environment.water_heater"
    assert clicks[0].event_time == datetime(2019, 10, 1, tzinfo=UTC)
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert len(rejected) == 1 and rejected[0].reason == "invalid action"


def test_retailrocket(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,992329,addtocart,248676,\n"
        "1433223203944,121688,transaction,15335,11117\n"
        "1433223203945,121688,refund,15335,\n"
    )
    items = list(iter_source(path, "retailrocket"))
    clicks = [i for i in items if isinstance(i, ClickEvent)]
    assert [c.action for c in clicks] == ["view", "cart", "purchase"]
    assert clicks[2].transaction_id == "11117" and clicks[0].transaction_id is None
    assert clicks[0].event_time == datetime.fromtimestamp(1433221332.117, tz=UTC)
    assert [i.reason for i in items if isinstance(i, Rejected)] == ["unknown event"]
    s = settings()
    assert topic_of(clicks[0], s) == s.topic_clicks and key_of(clicks[0]) == b"355908"


def test_jsonl_and_load_events_order_range_limit(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        '{"type":"order","event_id":"b","event_time":"2011-01-01T10:00:00Z","order_id":"1",'
        '"sku":"A","quantity":1,"unit_price":1.0}',
        '{"type":"click","event_id":"a","event_time":"2011-01-01T09:00:00Z","action":"view",'
        '"session_id":"s","sku":"A"}',
        '{"type":"order","event_id":"c","event_time":"2011-01-02T00:00:00Z"}',
        '{"type":"inventory","event_id":"d","event_time":"2011-01-01T11:00:00Z","sku":"A",'
        '"on_hand":3,"lead_time_days":2}',
        "",
    ]
    path.write_text("\n".join(lines))
    loaded = load_events(path, "jsonl")
    assert [e.event_id for _, e in loaded.events] == ["a", "b", "d"]  # event-time order
    assert loaded.rows_read == 4 and sum(loaded.rejected.values()) == 1
    ranged = load_events(
        path,
        "jsonl",
        start=datetime(2011, 1, 1, 9, 30, tzinfo=UTC),
        end=datetime(2011, 1, 1, 11, 0, tzinfo=UTC),
    )
    assert [e.event_id for _, e in ranged.events] == ["b"] and ranged.out_of_range == 2
    limited = load_events(path, "jsonl", limit=2)
    assert [e.event_id for _, e in limited.events] == ["a", "b"] and limited.over_limit == 1


def test_unknown_format() -> None:
    with pytest.raises(ReplayError, match="unknown format"):
        iter_source(Path("x"), "parquet")
