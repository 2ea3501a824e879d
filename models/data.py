"""Tables in, panels out: the UCI order-log cleaning rules and the long-table reader.

The cleaning rules of the UCI Online Retail log are plain public functions and constants so
that the streams replay importer can reuse them:

- :data:`NON_PRODUCT_CODES` / :func:`is_product_code` — postage, manual adjustments, bank
  charges, fees, gift vouchers, ... are not products and are dropped;
- :func:`is_cancellation` — invoices starting with ``C`` (and any negative quantity, e.g.
  stock write-offs) are not demand; a cancellation does not un-happen the original order,
  so the original line stays and the cancellation line is dropped;
- :func:`parse_customer_id` — ``CustomerID`` is written as a float (``17850.0``) or empty.

A *long table* has one row per series and period: ``series_id, timestamp, target`` plus any
covariate columns. :func:`read_long_table` turns it into a :class:`Panel`, the dense
``(series, time)`` arrays every forecaster consumes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.covariates import price_rel, ref_periods
from models.exceptions import CovariateError, DataError

UCI_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)

#: Stock codes of the UCI log that are not products (upper case).
NON_PRODUCT_CODES: frozenset[str] = frozenset(
    {"POST", "DOT", "M", "C2", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS"}
)
#: Prefixes of non-product codes: gift vouchers (gift_0001_20) and the DCGS* charity/sample
#: lines.
NON_PRODUCT_PREFIXES: tuple[str, ...] = ("GIFT_", "DCGS")

#: pandas frequency of the period start timestamps (weeks start on Monday).
FREQ_ALIASES: dict[str, str] = {"D": "D", "W": "W-MON", "H": "h"}
#: pandas period alias used to floor timestamps to their period (weeks ending Sunday).
PERIOD_ALIASES: dict[str, str] = {"D": "D", "W": "W-SUN", "H": "h"}
SEASON_DEFAULT: dict[str, int] = {"D": 7, "W": 52, "H": 24}
TABLE_COLUMNS = ("series_id", "timestamp", "target")


def is_product_code(code: object) -> bool:
    """True when a UCI ``StockCode`` is a product (not postage, a fee, a voucher, ...)."""
    if not isinstance(code, str) or not code.strip():
        return False
    c = code.strip().upper()
    return c not in NON_PRODUCT_CODES and not c.startswith(NON_PRODUCT_PREFIXES)


def is_cancellation(invoice_no: object, quantity: float) -> bool:
    """True for a cancellation line: invoice ``C…`` or a non-positive quantity."""
    return str(invoice_no).strip().upper().startswith("C") or not quantity > 0


def parse_customer_id(value: object) -> str | None:
    """``17850.0`` → ``"17850"``; empty / NaN → ``None``; other strings are kept stripped."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if np.isnan(value) else str(int(value))
    text = str(value).strip()
    if not text or text.lower() == "nan":
        return None
    if re.fullmatch(r"\d+\.0+", text):
        return text.split(".")[0]
    return text


def clean_uci_lines(raw: pd.DataFrame) -> pd.DataFrame:
    """Apply the cleaning rules to UCI invoice lines (vectorised).

    Keeps product lines with a positive quantity and a positive unit price that are not
    cancellations; normalises ``StockCode`` to upper case and ``CustomerID`` to text.

    Returns columns ``InvoiceNo, StockCode, Quantity, InvoiceDate (datetime64), UnitPrice,
    CustomerID, Country``.
    """
    missing = [c for c in ("InvoiceNo", "StockCode", "Quantity", "InvoiceDate") if c not in raw]
    if missing:
        raise DataError(
            f"the order log lacks the columns {missing}; a UCI log has the header "
            f"{','.join(UCI_COLUMNS)}"
        )
    df = raw.copy()
    df["StockCode"] = df["StockCode"].astype(str).str.strip().str.upper()
    invoice = df["InvoiceNo"].astype(str).str.strip().str.upper()
    qty = pd.to_numeric(df["Quantity"], errors="coerce")
    price = pd.to_numeric(df.get("UnitPrice", pd.Series(1.0, index=df.index)), errors="coerce")
    product = ~df["StockCode"].isin(NON_PRODUCT_CODES) & ~df["StockCode"].str.startswith(
        NON_PRODUCT_PREFIXES
    )
    product &= df["StockCode"].str.len() > 0
    keep = product & ~invoice.str.startswith("C") & (qty > 0) & (price > 0)
    df = df.loc[keep].copy()
    df["Quantity"] = qty[keep].astype("float64")
    df["UnitPrice"] = price[keep].astype("float64")
    df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"], errors="coerce")
    if df["InvoiceDate"].isna().any():
        bad = int(df["InvoiceDate"].isna().sum())
        raise DataError(
            f"{bad} order lines have an unreadable InvoiceDate; use YYYY-MM-DD HH:MM:SS"
        )
    if "CustomerID" in df:
        df["CustomerID"] = [parse_customer_id(v) for v in df["CustomerID"]]
    return df


def read_uci_log(path: str | Path) -> pd.DataFrame:
    """Read a UCI Online Retail CSV (or ``.csv.gz``); clean it with :func:`clean_uci_lines`."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"order log {p} does not exist; pass the path of the CSV (or .csv.gz)")
    raw = pd.read_csv(p, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str})
    if raw.empty:
        raise DataError(f"order log {p} has no rows")
    return clean_uci_lines(raw)


def uci_to_long(
    lines: pd.DataFrame, freq: str = "D", top: int | None = None, from_log_start: bool = False
) -> pd.DataFrame:
    """Aggregate cleaned UCI lines to a long table of units per SKU and period.

    Columns: ``series_id, timestamp, target, price_rel, shop_open`` where ``price_rel`` is
    the one definition of :func:`models.covariates.price_rel` (the period's mean unit price
    over the median of the four weeks before it; 1.0 without sales), which the forecast
    worker computes from the feature store, and ``shop_open`` is 1 when the whole shop sold
    anything in the period. Every SKU has a row for every period from its first sale (or,
    with ``from_log_start``, from the log's first period) to the end of the log; periods
    without sales are zeros. ``top`` keeps the ``top`` SKUs with most units (ties broken by
    code).
    """
    if lines.empty:
        raise DataError("no product sales left after cleaning; is this a UCI order log?")
    alias = _freq_alias(freq)
    df = lines.assign(timestamp=floor_to_period(lines["InvoiceDate"], freq))
    if top is not None:
        if top < 1:
            raise DataError(f"--top must be >= 1, got {top}")
        units = df.groupby("StockCode")["Quantity"].sum().reset_index()
        units = units.sort_values(["Quantity", "StockCode"], ascending=[False, True])
        df = df[df["StockCode"].isin(set(units["StockCode"].head(top)))]
    df = df.assign(revenue=df["Quantity"] * df["UnitPrice"])
    agg = df.groupby(["StockCode", "timestamp"], sort=True).agg(
        target=("Quantity", "sum"), revenue=("revenue", "sum")
    )
    lookback = ref_periods(freq)
    periods = pd.date_range(df["timestamp"].min(), df["timestamp"].max(), freq=alias)
    active = set(floor_to_period(lines["InvoiceDate"], freq).unique())
    frames = []
    for sku, group in agg.groupby(level=0, sort=True):
        g = group.droplevel(0)
        idx = periods if from_log_start else periods[periods >= g.index.min()]
        g = g.reindex(idx)
        units, revenue = g["target"].fillna(0.0).to_numpy(), g["revenue"].fillna(0.0).to_numpy()
        frames.append(
            pd.DataFrame(
                {
                    "series_id": sku,
                    "timestamp": idx,
                    "target": units,
                    "price_rel": price_rel(units[None], revenue[None], lookback)[0],
                    "shop_open": [1.0 if t in active else 0.0 for t in idx],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _freq_alias(freq: str) -> str:
    try:
        return FREQ_ALIASES[freq.upper()]
    except KeyError:
        raise DataError(f"unknown frequency {freq!r}; use one of D, W, H") from None


def floor_to_period(ts: pd.Series, freq: str) -> pd.Series:
    """Start timestamp of the period (day, Monday-start week, hour) of each timestamp."""
    _freq_alias(freq)
    return ts.dt.to_period(PERIOD_ALIASES[freq.upper()]).dt.start_time


# --------------------------------------------------------------------------- panels


@dataclass
class Panel:
    """Dense ``(N series, T periods)`` view of a long table on a common regular time grid.

    Attributes:
        series_ids: ``N`` ids.
        index: ``T`` period start timestamps (regular, frequency ``freq``).
        freq: ``"D"``, ``"W"`` or ``"H"``.
        target: ``(N, T)`` float64, 0 where not observed.
        observed: ``(N, T)`` bool, False before a series' first row (new SKUs).
        known: name → ``(N, T)`` float64 known-future covariates.
        static: name → ``(N,)`` str static features.
    """

    series_ids: list[str]
    index: pd.DatetimeIndex
    freq: str
    target: np.ndarray
    observed: np.ndarray
    known: dict[str, np.ndarray] = field(default_factory=dict)
    static: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, t = len(self.series_ids), len(self.index)
        if self.target.shape != (n, t) or self.observed.shape != (n, t):
            raise DataError(
                f"panel arrays must be ({n}, {t}); got target {self.target.shape}, observed "
                f"{self.observed.shape}"
            )
        for name, arr in self.known.items():
            if arr.shape != (n, t):
                raise DataError(f"known covariate {name!r} must be ({n}, {t}), got {arr.shape}")
        for name, arr in self.static.items():
            if arr.shape != (n,):
                raise DataError(f"static feature {name!r} must be ({n},), got {arr.shape}")

    @property
    def num_series(self) -> int:
        return len(self.series_ids)

    @property
    def length(self) -> int:
        return len(self.index)

    def slice(self, start: int, stop: int) -> Panel:
        """Periods ``[start, stop)`` of every series (covariates included)."""
        return Panel(
            self.series_ids,
            self.index[start:stop],
            self.freq,
            self.target[:, start:stop],
            self.observed[:, start:stop],
            {k: v[:, start:stop] for k, v in self.known.items()},
            dict(self.static),
        )

    def future_known(self, start: int, horizon: int) -> dict[str, np.ndarray]:
        """Known covariates of periods ``[start, start + horizon)``: name → ``(N, horizon)``."""
        return {k: v[:, start : start + horizon] for k, v in self.known.items()}

    def future_index(self, horizon: int) -> pd.DatetimeIndex:
        """The ``horizon`` periods after the last one of the panel."""
        return pd.date_range(self.index[-1], periods=horizon + 1, freq=_freq_alias(self.freq))[1:]

    def fingerprint(self) -> str:
        """sha256 (16 hex) of ids, timestamps, targets and covariates: identifies training data."""
        h = hashlib.sha256()
        h.update("\0".join(self.series_ids).encode())
        h.update(np.asarray(self.index.asi8).tobytes())
        h.update(np.ascontiguousarray(self.target, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(self.observed).tobytes())
        for name in sorted(self.known):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.known[name], dtype=np.float64).tobytes())
        return h.hexdigest()[:16]


def _split_cols(cols: str | Sequence[str] | None) -> list[str]:
    if cols is None:
        return []
    if isinstance(cols, str):
        return [c.strip() for c in cols.split(",") if c.strip()]
    return [c.strip() for c in cols if c.strip()]


def _numeric_covariate(col: pd.Series, name: str, source: str) -> pd.Series:
    """A known covariate as floats (``true``/``false`` → 1/0, empty → NaN); text is an error."""
    if pd.api.types.is_numeric_dtype(col.dtype):  # numbers or booleans as read
        return col.astype("float64")
    text = col.astype("string").str.strip().replace("", pd.NA)
    flag = text.str.lower()
    text = text.mask(flag.eq("true").fillna(False), "1").mask(flag.eq("false").fillna(False), "0")
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() & text.notna()
    if bad.any():
        raise CovariateError(
            f"known covariate {name!r} in {source} has {int(bad.sum())} non-numeric values "
            f"(e.g. {col[bad].iloc[0]!r}); known covariates are numbers: encode a categorical "
            "one as 0/1 columns (one per value), or pass a per-series label with --static"
        )
    return values.astype("float64")


def panel_from_frame(
    df: pd.DataFrame,
    freq: str,
    known: str | Sequence[str] | None = None,
    static: str | Sequence[str] | None = None,
    source: str = "table",
) -> Panel:
    """Build a :class:`Panel` from a long table ``series_id, timestamp, target[, covariates]``.

    Timestamps are floored to ``freq`` periods and duplicate rows summed (covariates
    averaged). A series is observed from its first row to the end of the table; missing
    periods in between count as zero sales. Known covariates are forward-filled, then 0.
    """
    known_cols, static_cols = _split_cols(known), _split_cols(static)
    missing = [c for c in TABLE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{source} lacks the columns {missing}; a long table has series_id, timestamp, "
            f"target[, covariates...] (build one with `demandcast dataset from-log`)"
        )
    if df.empty:
        raise DataError(f"{source} is empty; it needs at least one row per series")
    available = [c for c in df.columns if c not in TABLE_COLUMNS]
    unknown = [c for c in known_cols + static_cols if c not in df.columns]
    if unknown:
        raise CovariateError(
            f"unknown covariate column(s) {unknown} in {source}; available: {available or 'none'}"
        )
    alias = _freq_alias(freq)
    df = df.copy()
    df["series_id"] = df["series_id"].astype(str)
    df["timestamp"] = pd.to_datetime(df["timestamp"], errors="coerce")
    if df["timestamp"].isna().any():
        raise DataError(f"{source} has unreadable timestamps; use ISO dates (YYYY-MM-DD[ HH:MM])")
    if getattr(df["timestamp"].dt, "tz", None) is not None:
        df["timestamp"] = df["timestamp"].dt.tz_convert(None)
    df["timestamp"] = floor_to_period(df["timestamp"], freq)
    target = pd.to_numeric(df["target"], errors="coerce")
    if target.isna().any():
        raise DataError(
            f"{source} has {int(target.isna().sum())} missing or non-numeric targets; write 0 "
            "for periods without sales"
        )
    df["target"] = target.astype("float64")
    for c in known_cols:
        df[c] = _numeric_covariate(df[c], c, source)
    agg: dict[str, str] = {"target": "sum", **{c: "mean" for c in known_cols}}
    grouped = df.groupby(["series_id", "timestamp"], sort=True).agg(agg)
    ids = sorted(grouped.index.get_level_values(0).unique())
    index = pd.date_range(
        grouped.index.get_level_values(1).min(), grouped.index.get_level_values(1).max(), freq=alias
    )
    full = pd.MultiIndex.from_product([ids, index], names=["series_id", "timestamp"])
    wide = grouped.reindex(full)
    n, t = len(ids), len(index)
    present = wide["target"].notna().to_numpy().reshape(n, t)
    observed = np.maximum.accumulate(present, axis=1)
    target_arr = wide["target"].fillna(0.0).to_numpy().reshape(n, t)
    known_arr: dict[str, np.ndarray] = {}
    for c in known_cols:
        arr = wide[c].unstack().reindex(index=ids, columns=index)
        known_arr[c] = arr.ffill(axis=1).bfill(axis=1).fillna(0.0).to_numpy(dtype=np.float64)
    static_arr: dict[str, np.ndarray] = {}
    for c in static_cols:
        first = df.groupby("series_id")[c].first().reindex(ids)
        static_arr[c] = first.astype(str).to_numpy()
    return Panel(list(ids), index, freq.upper(), target_arr, observed, known_arr, static_arr)


def read_long_table(
    path: str | Path,
    freq: str,
    known: str | Sequence[str] | None = None,
    static: str | Sequence[str] | None = None,
) -> Panel:
    """Read a long-table CSV (or ``.csv.gz``) into a :class:`Panel` (:func:`panel_from_frame`)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"table {p} does not exist")
    try:
        df = pd.read_csv(p, dtype={"series_id": str})
    except pd.errors.EmptyDataError:
        raise DataError(f"table {p} is empty; it needs a header and rows") from None
    return panel_from_frame(df, freq, known, static, source=str(p))


def write_long_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a long table as CSV (``.gz`` compresses); the parent folder is created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(p, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return p


def hash_bucket(values: Iterable[str], buckets: int, salt: str = "") -> np.ndarray:
    """Stable (process-independent) hash of strings into ``[0, buckets)``: ``(N,)`` int64."""
    out = [
        int.from_bytes(hashlib.blake2b(f"{salt}\0{v}".encode(), digest_size=8).digest(), "little")
        % buckets
        for v in values
    ]
    return np.asarray(out, dtype=np.int64)


def validate_known(panel: Panel, names: Sequence[str], where: str = "panel") -> None:
    """Raise :class:`CovariateError` when a name is not a known covariate of ``panel``."""
    unknown = [n for n in names if n not in panel.known]
    if unknown:
        raise CovariateError(
            f"unknown covariate(s) {unknown} in {where}; it has {sorted(panel.known) or 'none'}"
        )


def check_future_known(
    panel: Panel, names: Sequence[str], future: Mapping[str, np.ndarray] | None, horizon: int
) -> dict[str, np.ndarray]:
    """Validate the future values of known covariates: name → ``(N, horizon)`` finite."""
    if not names:
        return {}
    if future is None:
        raise CovariateError(
            f"this forecaster uses known covariates {list(names)}: pass their values for the "
            f"{horizon} forecast periods (future_known)"
        )
    out = {}
    for name in names:
        if name not in future:
            raise CovariateError(
                f"future values of covariate {name!r} are missing; given: {sorted(future)}"
            )
        arr = np.asarray(future[name], dtype=np.float64)
        if arr.shape != (panel.num_series, horizon):
            raise CovariateError(
                f"future covariate {name!r} must be ({panel.num_series}, {horizon}), got "
                f"{arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise CovariateError(f"future covariate {name!r} has NaN or infinite values")
        out[name] = arr
    return out


__all__ = [
    "FREQ_ALIASES",
    "NON_PRODUCT_CODES",
    "NON_PRODUCT_PREFIXES",
    "SEASON_DEFAULT",
    "UCI_COLUMNS",
    "Panel",
    "check_future_known",
    "clean_uci_lines",
    "hash_bucket",
    "is_cancellation",
    "is_product_code",
    "panel_from_frame",
    "parse_customer_id",
    "read_long_table",
    "read_uci_log",
    "uci_to_long",
    "validate_known",
    "write_long_table",
]
