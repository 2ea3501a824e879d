"""Window planning and model holding in the forecast worker, without services."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from schemas import Window, WindowClosed
from streams.alerts.state import DayExpectation
from streams.serving.model_holder import ModelHolder, ServingModel, load_version
from streams.serving.planning import batch_plan, plan_windows

T0 = datetime(2011, 6, 1, 10, tzinfo=UTC)
H = timedelta(hours=1)


def _closed(hour: int, partition: int, skus: list[str]) -> WindowClosed:
    return WindowClosed(
        window=Window(start=T0 + hour * H, end=T0 + (hour + 1) * H),
        partition=partition,
        skus=skus,
        closed_at=T0 + (hour + 1) * H,
    )


def test_partitions_of_one_window_merge_into_one_piece_of_work() -> None:
    works, coalesced = plan_windows([_closed(0, 0, ["A"]), _closed(0, 1, ["B"])], max_pending=2)
    assert coalesced == 0
    assert len(works) == 1 and works[0].skus == {"A", "B"}


def test_windows_within_the_limit_are_each_forecast_in_order() -> None:
    works, coalesced = plan_windows([_closed(1, 0, ["B"]), _closed(0, 0, ["A"])], max_pending=2)
    assert coalesced == 0
    assert [w.window.start for w in works] == [T0, T0 + H]


def test_a_backlog_coalesces_into_the_newest_window_with_every_sku() -> None:
    closes = [_closed(h, h % 2, [f"S{h}"]) for h in range(5)]
    works, coalesced = plan_windows(closes, max_pending=2)
    assert coalesced == 4
    assert len(works) == 1
    assert works[0].window.start == T0 + 4 * H
    assert works[0].skus == {f"S{h}" for h in range(5)}


def _model(version: str) -> ServingModel:
    return ServingModel(version, object(), [0.1, 0.5, 0.9], 56, 28)


def test_reload_swaps_atomically_and_a_failed_load_keeps_the_old_model(tmp_path: Path) -> None:
    gate = threading.Event()
    calls: list[str | None] = []

    def loader(root: Path, version: str | None, device: str) -> ServingModel:
        calls.append(version)
        if version is None:
            return _model("v1")
        gate.wait(10)
        if version == "broken":
            raise ValueError("model.safetensors is corrupt")
        return _model(version)

    holder = ModelHolder(tmp_path, loader=loader)
    in_flight = holder.current
    thread = holder.request("v2")
    assert holder.current is in_flight  # the batch in flight keeps its model until the swap
    gate.set()
    thread.join(10)
    assert holder.current.version == "v2" and in_flight.version == "v1"
    holder.request("broken").join(10)
    assert holder.current.version == "v2"
    assert holder.last_error is not None and "corrupt" in holder.last_error


def test_a_changed_champion_pointer_triggers_a_reload(tmp_path: Path) -> None:
    versions = iter(["v1", "v2"])

    def loader(root: Path, version: str | None, device: str) -> ServingModel:
        return _model(next(versions))

    holder = ModelHolder(tmp_path, loader=loader)
    assert holder.check_pointer() is None
    (tmp_path / "champion.json").write_text('{"champion": "v2"}')
    thread = holder.check_pointer()
    assert thread is not None
    thread.join(10)
    assert holder.current.version == "v2"
    assert holder.reloads == 1


def test_a_champion_that_fails_to_load_at_start_leaves_the_baseline_serving(
    tmp_path: Path,
) -> None:
    def loader(root: Path, version: str | None, device: str) -> ServingModel:
        raise ValueError("model.safetensors: size mismatch")

    holder = ModelHolder(tmp_path, loader=loader)
    assert holder.current.version == "baseline-seasonal-quantiles"
    assert holder.last_error is not None and "size mismatch" in holder.last_error


def test_forecast_payloads_satisfy_the_contract_even_from_crossing_raw_output() -> None:
    from schemas import Forecast, decode
    from streams.serving.payloads import forecast_payloads

    rng = np.random.default_rng(0)
    raw = rng.normal(1.0, 2.0, size=(3, 4, 3))  # negative and crossing on purpose
    window = Window(start=T0, end=T0 + H)
    steps = [T0 + timedelta(days=d) for d in range(4)]
    payloads = forecast_payloads(["A", "B", "C"], window, "v7", T0, [0.1, 0.5, 0.9], steps, raw)
    decoded = [decode(Forecast, p) for p in payloads]
    assert [f.sku for f in decoded] == ["A", "B", "C"]
    assert all(f.model_version == "v7" and f.window == window for f in decoded)
    values = np.array([[s.values for s in f.steps] for f in decoded])
    assert (values >= 0).all() and (np.diff(values, axis=2) >= 0).all()
    fixed = np.maximum.accumulate(np.clip(raw, 0, None), axis=2)
    assert np.allclose(values, fixed, atol=1e-4)


def test_backfill_windows_are_skipped() -> None:
    from streams.serving.planning import backfill_filter

    closes = [_closed(h, 0, [f"S{h}"]) for h in range(4)]
    assert backfill_filter(closes, None) == closes
    kept = backfill_filter(closes, T0 + 2 * H)  # windows ending at 11:00 and 12:00 are history
    assert [c.window.end for c in kept] == [T0 + 3 * H, T0 + 4 * H]


def test_batches_cover_every_sku_once_with_a_small_first_batch() -> None:
    skus = [f"S{i:04d}" for i in range(2500)]
    batches = batch_plan(skus, 1024)
    assert [len(b) for b in batches] == [256, 1024, 1024, 196]
    assert [sku for b in batches for sku in b] == skus
    assert batch_plan([], 1024) == []
    assert batch_plan(["A", "B"], 1) == [["A"], ["B"]]


def test_a_day_expectation_is_recognised_unparsed_and_round_trips() -> None:
    day = T0.date()
    expected = DayExpectation(day, 1.0, 2.5, 4.0, promotion_id="P1", baseline=2.0)
    raw = expected.dump()
    assert DayExpectation.parse(raw) == expected
    assert DayExpectation.is_for(raw, day) and DayExpectation.is_for(raw.decode(), day)
    assert not DayExpectation.is_for(raw, day + timedelta(days=1))
    assert not DayExpectation.is_for(None, day) and not DayExpectation.is_for(b"", day)


def test_a_compiled_model_is_built_before_it_serves_and_forecasts_as_eager(
    tmp_path: Path,
) -> None:
    """``model_compile``: the loader compiles and warms the graph up; the served quantiles
    equal the eager model's."""
    from models.bench import synthetic_panel
    from models.pipeline import TransformerForecaster
    from models.registry import ModelRegistry

    tiny = Path(__file__).parents[2] / "fixtures" / "tiny_model"
    ModelRegistry(tmp_path).register(TransformerForecaster.from_pretrained(tiny, device="cpu"))
    eager = load_version(tmp_path, None, "cpu")
    served = load_version(tmp_path, None, "cpu", compile=True)
    assert served.version == eager.version == "v0001"
    assert served.forecaster.compile and served.forecaster._compiled is not None
    assert not eager.forecaster.compile and eager.forecaster._compiled is None
    panel = synthetic_panel(5, 30, seed=1, known=["price_rel"])
    future = {"price_rel": np.full((5, eager.horizon), 0.95)}
    np.testing.assert_allclose(
        served.predict(panel, future), eager.predict(panel, future), rtol=1e-4, atol=1e-4
    )
