"""``updater once`` on the live path: three weeks of the real UCI log replayed through a stream
worker into Redis, a small champion, then decision cycles against the real Kafka + Redis:
a schedule trigger fine-tunes, evaluates and promotes or rejects; a candidate trained on
shuffled targets is rejected; a NaN divergence leaves the champion untouched."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import typer
from typer.testing import CliRunner

from demandcast import cli_models, cli_updater
from models.config import DemandcastConfig
from models.pipeline import TrainingConfig, TransformerForecaster
from models.registry import ModelRegistry
from schemas import ModelUpdate, decode
from streams.history.replay import replay
from streams.kafka.admin import ensure_topics
from streams.settings import Settings
from streams.store.keys import layout_of
from updater.audit import LOCK_NAME, AuditLog, DecisionLock
from updater.cycle import Cycle, CycleOptions
from updater.evaluation import Verdict
from updater.exceptions import NotEnoughHistoryError, UpdaterBusyError
from updater.history import event_time, promotion_changes, read_history

from ..live import consume_all, running_worker, stats, wait_for

pytestmark = pytest.mark.integration

TINY_MODEL = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_model"
START, CUT = datetime(2010, 12, 1, tzinfo=UTC), datetime(2010, 12, 14, tzinfo=UTC)


@pytest.fixture
def uci_weeks(tmp_path: Path) -> Path:
    """The first 40,000 lines of the real UCI log (2010-12-01 to 2010-12-21): ``uci_slice``
    holds 8 days, too few for a weekly pattern to learn and a held-out window to score."""
    import gzip

    from tests.conftest import UCI_LOG

    out = tmp_path / "online_retail_weeks.csv"
    with gzip.open(UCI_LOG, "rt", newline="") as src, out.open("w", newline="") as dst:
        for i, line in enumerate(src):
            if i > 40_000:
                break
            dst.write(line)
    return out


def updater_settings(isolated: Settings, registry: Path, **overrides: Any) -> Settings:
    """Settings for an updater on three weeks of the real log: a daily schedule trigger
    alone (drift and holidays off: their unit tests), 200 SKUs, 30 days, one thread."""
    return isolated.model_copy(
        update={
            "model_registry": registry,
            "updater_schedule_days": 1,
            "updater_lr": 3e-3,
            "updater_top_skus": 200,
            "updater_history_days": 30,
            "updater_min_sku_days": 50,
            "updater_wql_margin": 0.01,
            "updater_cpu_threads": 1,
            "updater_holiday_trigger": False,
            "updater_drift_threshold": 1e9,
            **overrides,
        }
    )


def _champion(s: Settings, cut: datetime = CUT) -> TransformerForecaster:
    """A small model trained on the replayed store up to the day before ``cut`` (2010-12-13
    by default; CPU, seconds)."""
    client = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    try:
        history = read_history(client, layout_of(s), START, cut, top=s.updater_top_skus)
    finally:
        client.close()
    cfg = DemandcastConfig(
        context_length=7,
        patch_length=7,
        d_model=16,
        num_layers=1,
        num_heads=2,
        ffn_dim=32,
        dropout=0.0,
        num_static_buckets=16,
    )
    f = TransformerForecaster(
        cfg, TrainingConfig(steps=60, batch_size=32, eval_every=20, num_threads=1), device="cpu"
    )
    return f.fit(history.panel, 2)


def test_updater_once_decides_and_never_promotes_a_bad_or_diverged_candidate(
    isolated: Settings, uci_weeks: Path, tmp_path: Path
) -> None:
    s = updater_settings(
        isolated,
        tmp_path / "models",
        updater_steps=100,
        updater_budget_seconds=60.0,
        updater_shadow_days=0,  # the offline stage decides (the live one: test_updater_live)
    )
    ensure_topics(s, [s.topic_model_updates])
    log = tmp_path / "worker.log"
    with running_worker(s, log) as proc:
        produced = replay(s, uci_weeks, "uci", progress=False).events_produced

        def drained() -> bool:
            st = stats(s)
            return st.get("events", 0) + st.get("duplicates", 0) + st.get("dead_letters", 0) >= (
                produced
            )

        wait_for(drained, 120, "the replay in Redis", proc, log)

    registry = ModelRegistry(s.model_registry)
    v1 = registry.register(_champion(s), {"training_data": {"end": "2010-12-13"}}, promote=True)
    cycle = Cycle(s, registry=registry)
    audit = AuditLog(registry.root)

    first = cycle.run()
    assert first.at is not None and first.at.date() == datetime(2010, 12, 21).date()
    assert [t.kind for t in first.triggers] == ["schedule"]
    assert first.outcome in ("promoted", "rejected"), first.reason
    assert set(first.figures) == {"champion", "candidate"}
    assert first.data["start"] == "2010-12-01" and first.data["end"] == "2010-12-20"
    assert len(first.data["fingerprint"]) == 16
    [record] = audit.records()
    assert record["outcome"] == first.outcome
    assert record["figures"]["candidate"]["wql"] == first.figures["candidate"]["wql"]
    assert record["triggers"][0]["kind"] == "schedule"
    if first.outcome == "promoted":
        assert first.candidate is not None and registry.champion() == first.candidate
        assert registry.metadata(first.candidate)["parent_version"] == v1
        updates = [decode(ModelUpdate, m.value()) for m in consume_all(s, s.topic_model_updates)]
        assert [(u.version, u.parent_version, u.action) for u in updates] == [
            (first.candidate, v1, "promote")
        ]
        assert "schedule" in updates[0].reason and first.data["fingerprint"] in updates[0].reason
        assert updates[0].metrics["candidate_wql"] < updates[0].metrics["champion_wql"]
    else:
        assert registry.champion() == v1 and registry.versions() == [v1]
        assert first.figures["candidate"]["wql"] >= first.figures["champion"]["wql"] * 0.98 or (
            "MASE" in first.reason
        )
    champion, versions = registry.champion(), registry.versions()

    bad = cycle.run(CycleOptions(shuffle_targets=True))
    assert bad.outcome == "rejected", bad.reason
    assert bad.figures["candidate"]["wql"] > bad.figures["champion"]["wql"]
    assert registry.champion() == champion and registry.versions() == versions

    diverged = cycle.run(CycleOptions(diverge=True))
    assert diverged.outcome == "failed" and "FineTuneDivergedError" in diverged.reason
    assert registry.champion() == champion and registry.versions() == versions
    outcomes = [r["outcome"] for r in audit.records()]
    assert outcomes == [first.outcome, "rejected", "failed"]

    # the same through the command line: `updater once`, then `model history`
    app = typer.Typer()
    cli_models.register(app, lambda: s)
    cli_updater.register(app, lambda: s)
    runner = CliRunner()
    once = runner.invoke(app, ["updater", "once", "--json"])
    assert once.exit_code == 0, once.output
    assert json.loads(once.stdout)["outcome"] in ("promoted", "rejected", "idle")
    listed = runner.invoke(app, ["model", "history"])
    assert listed.exit_code == 0 and len(listed.stdout.splitlines()) == len(audit.records()) >= 3
    champion, versions, decided = registry.champion(), registry.versions(), len(audit.records())

    # a failing registry write: recorded as failed, the champion pointer where it was
    def broken(*_: Any, **__: Any) -> str:
        raise OSError(28, "No space left on device")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "register", broken)
        mp.setattr("updater.cycle.decide", lambda *_, **__: Verdict(True, "passed"))
        full = cycle.run(CycleOptions(force="schedule"))
    assert full.outcome == "failed" and "No space left" in full.reason, full.reason
    assert registry.champion() == champion and registry.versions() == versions

    # killed mid-fine-tune: no version, no temporary directory, the lock free again
    env = s.model_copy(update={"updater_steps": 1_000_000, "updater_budget_seconds": 600.0})
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from streams.settings import Settings\n"
            "from updater.cycle import run_once\nrun_once(Settings())",
        ],
        env=env.as_env(),
    )
    try:
        lock = registry.root / LOCK_NAME
        wait_for(lambda: lock.exists() and lock.read_text() == str(child.pid), 30, "the lock")
        time.sleep(4)  # loading, reading the store, then fine-tuning
        assert child.poll() is None
    finally:
        child.kill()
        child.wait(30)
    assert registry.champion() == champion and registry.versions() == versions
    assert not list((registry.root / "versions").glob(".tmp-*"))
    assert len(audit.records()) == decided + 1  # the failed registry write; nothing since
    with DecisionLock(registry.root):
        pass


def test_an_empty_store_is_recorded_as_failed_and_a_held_lock_refused(
    isolated: Settings, tmp_path: Path
) -> None:
    s = isolated.model_copy(update={"model_registry": tmp_path / "models"})
    registry = ModelRegistry(s.model_registry)
    v1 = registry.register(TransformerForecaster.from_pretrained(TINY_MODEL, device="cpu"))
    client = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    cycle = Cycle(s, client=client, registry=registry)
    with pytest.raises(NotEnoughHistoryError, match="no watermark"):
        cycle.run()
    client.hset(f"{s.redis_prefix}:wm", f"{s.topic_orders}:0", 1_292_000_000_000)
    decision = cycle.run()
    assert decision.outcome == "failed" and "NotEnoughHistoryError" in decision.reason
    assert "no daily series" in decision.reason
    assert registry.champion() == v1 and registry.versions() == [v1]
    assert [r["outcome"] for r in AuditLog(registry.root).records()] == ["failed"]
    with DecisionLock(registry.root), pytest.raises(UpdaterBusyError):
        cycle.run()
    client.close()


def test_event_time_and_promotion_changes_from_the_store(isolated: Settings) -> None:
    s, layout = isolated, layout_of(isolated)
    client = redis.Redis.from_url(s.redis_url, **s.redis_kwargs())
    try:
        assert event_time(client, layout, s.topic_orders) is None
        day = 86_400_000
        t0 = 1_300_000_000_000
        client.hset(
            layout.watermarks,
            mapping={
                f"{s.topic_orders}:0": t0 + day,
                f"{s.topic_orders}:1": t0,
                f"{s.topic_clicks}:0": t0 - 9 * day,
            },
        )
        assert event_time(client, layout, s.topic_orders) == datetime.fromtimestamp(
            t0 / 1000, tz=UTC
        )
        promos = {
            "starts": (t0 + 2 * day, t0 + 9 * day),
            "ends": (t0 - 20 * day, t0 + day),
            "far": (t0 + 30 * day, t0 + 40 * day),
        }
        for pid, (start, end) in promos.items():
            client.hset(
                layout.promotion(pid),
                mapping={"action": "start", "planned_start": start, "planned_end": end},
            )
        client.sadd(layout.promotions_of_sku("A"), "starts", "far")
        client.sadd(layout.promotions_of_sku("B"), "ends")
        client.sadd(layout.promotions_of_sku("C"), "far")
        at = datetime.fromtimestamp(t0 / 1000, tz=UTC)
        changing = promotion_changes(
            client, layout, ["A", "B", "C", "D"], at, at + timedelta(days=7)
        )
        assert changing == {"A": ["starts"], "B": ["ends"]}
    finally:
        client.close()
