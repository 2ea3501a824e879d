"""The forecast worker's Redis client rides out a Redis restart (streams.store.clients)."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from streams.store.clients import MAX_DELAY_S, RIDE_OUT_S, LoggedRetry, riding_out


def test_the_retry_covers_the_ride_out_time_and_logs_each_try(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    retry = riding_out()["retry"]
    assert isinstance(retry, LoggedRetry)
    slept: list[float] = []
    monkeypatch.setattr("redis.retry.sleep", slept.append)
    calls = {"n": 0}
    failed: list[Exception] = []

    def down() -> str:
        calls["n"] += 1
        raise redis.ConnectionError("Connection refused")

    with (
        caplog.at_level(logging.WARNING, logger="streams.store.clients"),
        pytest.raises(redis.ConnectionError),
    ):
        retry.call_with_retry(down, failed.append)
    # every delay at most MAX_DELAY_S, together at least RIDE_OUT_S before giving up
    assert max(slept) == MAX_DELAY_S and sum(slept) >= RIDE_OUT_S
    assert calls["n"] == len(failed) == len(slept) + 1
    logged = [r for r in caplog.records if "redis unavailable (Connection refused)" in r.message]
    assert len(logged) == calls["n"]


def test_a_loading_redis_is_waited_for_and_a_reply_returned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    retry = riding_out()["retry"]
    monkeypatch.setattr("redis.retry.sleep", lambda _s: None)
    tries = iter([redis.BusyLoadingError("LOADING"), redis.ConnectionError("reset"), None])

    def flaky() -> str:
        error = next(tries)
        if error is not None:
            raise error
        return "ok"

    assert retry.call_with_retry(flaky, lambda _e: None) == "ok"

    # other errors are not retried
    def wrong_type() -> str:
        raise redis.ResponseError("WRONGTYPE")

    with pytest.raises(redis.ResponseError):
        retry.call_with_retry(wrong_type, lambda _e: None)

    # nor a wrong password (an AuthenticationError is a ConnectionError in redis-py)
    calls = {"n": 0}

    def refused() -> str:
        calls["n"] += 1
        raise redis.AuthenticationError("invalid username-password pair")

    with pytest.raises(redis.AuthenticationError):
        retry.call_with_retry(refused, lambda _e: None)
    assert calls["n"] == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_pipelines_and_scripts_ride_out_a_killed_and_restarted_redis(tmp_path: Path) -> None:
    port = _free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    args += ["--appendonly", "yes", "--save", ""]

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=port).ping()
                return proc
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    servers = [start()]
    client = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0", **riding_out())
    plain = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0", retry=None)
    try:
        client.hset("h", "a", 1)
        plain.ping()
        script = client.register_script("return redis.call('hget', KEYS[1], ARGV[1])")
        servers[0].kill()  # SIGKILL: its append-only file on disk as it is
        servers[0].wait()
        threading.Timer(1.5, lambda: servers.append(start())).start()
        with pytest.raises(redis.ConnectionError):
            plain.hget("h", "a")  # without the retry: the error at once
        t0 = time.monotonic()
        pipe = client.pipeline(transaction=False)
        pipe.hget("h", "a")
        script(keys=["h"], args=["a"], client=pipe)  # the script cache is empty after it
        assert pipe.execute() == [b"1", b"1"]
        assert time.monotonic() - t0 >= 1.0  # it did wait for the restart
        assert client.hget("h", "a") == b"1"
    finally:
        client.close()
        plain.close()
        for proc in servers:
            proc.kill()
            proc.wait()
