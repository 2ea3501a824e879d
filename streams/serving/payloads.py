"""The forecast worker's output: ``Forecast`` messages built straight from the model's array."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from schemas import Window


def forecast_payloads(
    skus: Sequence[str],
    window: Window,
    version: str,
    created_at: datetime,
    levels: Sequence[float],
    step_times: Sequence[datetime],
    quantiles: np.ndarray,
) -> list[bytes]:
    """The JSON of one :class:`~schemas.Forecast` per SKU, built straight from the array.

    ``quantiles`` has shape ``(len(skus), len(step_times), len(levels))``. Values are
    clipped at 0, made non-decreasing across levels and rounded to 4 decimals (rounding
    keeps both properties), so every payload satisfies the ``Forecast`` contract.

    The numbers of every SKU are written by one ``orjson`` call over the whole array and
    cut into rows; each payload is then one ``%`` into a template holding everything else.
    Building the pydantic models would take ~50x longer, and even plain dicts of Python
    floats ~3x.
    """
    import orjson

    q = np.maximum.accumulate(np.clip(np.asarray(quantiles, dtype=np.float64), 0.0, None), axis=2)
    n, h = len(skus), len(step_times)
    if q.shape != (n, h, len(levels)):
        raise ValueError(f"quantiles must be {(n, h, len(levels))}, got {q.shape}")
    if n == 0:
        return []

    def iso(t: datetime) -> str:
        return t.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def literal(value: Any) -> bytes:
        return orjson.dumps(value).replace(b"%", b"%%")

    head = b"".join(
        [
            b'{"schema_version":1,"sku":%b,"window":',
            literal({"start": iso(window.start), "end": iso(window.end)}),
            b',"model_version":',
            literal(version),
            b',"created_at":',
            literal(iso(created_at)),
            b',"freq":"D","quantile_levels":',
            literal([float(x) for x in levels]),
            b',"steps":[',
        ]
    )
    steps = b",".join(b'{"timestamp":' + literal(iso(t)) + b',"values":[%b]}' for t in step_times)
    template = head + steps + b"]}"
    text = orjson.dumps(np.ascontiguousarray(np.round(q, 4)), option=orjson.OPT_SERIALIZE_NUMPY)
    per_sku = text[3:-3].split(b"]],[[")  # "[[[a,b],[c,d]],[[...]]]" -> "a,b],[c,d" per SKU
    return [
        template % (orjson.dumps(sku), *rows.split(b"],["))
        for sku, rows in zip(skus, per_sku, strict=True)
    ]
