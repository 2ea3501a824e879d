"""The secure stack's configuration and the secrets' paths, without services: credentials
generated, kept 0600 and reused; Kafka's and Redis's configuration; nothing echoed."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.exceptions import StackError
from streams.settings import Settings, mask_url
from streams.stack.secure import (
    client_settings,
    ensure_credentials,
    kafka_listener_properties,
    redis_acl_lines,
    scram_format_args,
    write_client_env,
)

GIVEN = "given-Secret-0042"


def test_generated_credentials_are_private_and_reused(tmp_path: Path) -> None:
    creds = ensure_credentials(Settings(), tmp_path)
    assert creds.mechanism == "SCRAM-SHA-512"
    assert len(set(creds.secrets())) == 4 and all(len(s) >= 24 for s in creds.secrets())
    record = tmp_path / "credentials.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert ensure_credentials(Settings(), tmp_path) == creds  # the stored ones, again
    env = write_client_env(Settings(stack_kafka_port=29111), creds, tmp_path)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    text = env.read_text()
    assert "DEMANDCAST_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:29111" in text
    assert creds.kafka_password.get_secret_value() in text
    for secret in creds.secrets():
        assert secret not in repr(creds)


def test_given_credentials_are_used_and_other_ones_later_refused(tmp_path: Path) -> None:
    given = Settings(
        kafka_sasl_username="alice",
        kafka_sasl_password=SecretStr(GIVEN),
        redis_username="bob",
        redis_password=SecretStr(GIVEN + "r"),
    )
    creds = ensure_credentials(given, tmp_path)
    assert (creds.kafka_username, creds.redis_username) == ("alice", "bob")
    assert creds.kafka_password.get_secret_value() == GIVEN
    other = given.model_copy(update={"redis_password": SecretStr("other-Secret-77")})
    with pytest.raises(StackError, match="DEMANDCAST_REDIS_PASSWORD differs") as info:
        ensure_credentials(other, tmp_path)
    assert "other-Secret-77" not in str(info.value) and GIVEN not in str(info.value)


@pytest.mark.parametrize("bad", ['has"quote', "has,comma]x", "short"])
def test_unusable_passwords_are_refused_without_echo(tmp_path: Path, bad: str) -> None:
    with pytest.raises(StackError, match="DEMANDCAST_KAFKA_SASL_PASSWORD") as info:
        ensure_credentials(Settings(kafka_sasl_password=SecretStr(bad)), tmp_path)
    assert bad not in str(info.value)
    assert not (tmp_path / "credentials.json").exists()


def test_kafka_and_redis_configuration(tmp_path: Path) -> None:
    creds = ensure_credentials(Settings(), tmp_path)
    props = "\n".join(kafka_listener_properties(creds, "127.0.0.1", 29101, 29102))
    assert "listeners=SASL_PLAINTEXT://127.0.0.1:29101,CONTROLLER://127.0.0.1:29102" in props
    assert "PLAINTEXT:PLAINTEXT" not in props  # no listener without authentication
    assert "listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512" in props
    assert creds.kafka_password.get_secret_value() not in props  # SCRAM: in the metadata log
    args = " ".join(scram_format_args(creds))
    assert f"name={creds.kafka_username},password=" in args
    acl = "\n".join(redis_acl_lines(creds))
    assert "user default off" in acl and f"user {creds.redis_username} on #" in acl
    assert creds.redis_password.get_secret_value() not in acl  # only its SHA-256

    plain = ensure_credentials(Settings(kafka_sasl_mechanism="PLAIN"), tmp_path / "plain")
    props = "\n".join(kafka_listener_properties(plain, "127.0.0.1", 29101, 29102))
    assert "sasl.enabled.mechanisms=PLAIN" in props
    assert f'user_{plain.kafka_username}="' in props
    assert scram_format_args(plain) == []


def test_client_settings_and_redis_kwargs(tmp_path: Path) -> None:
    creds = ensure_credentials(Settings(), tmp_path)
    s = client_settings(Settings(), creds)
    conf = s.kafka_client_config()
    assert conf["security.protocol"] == "SASL_PLAINTEXT"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.password"] == creds.kafka_password.get_secret_value()
    assert s.redis_kwargs() == {
        "username": creds.redis_username,
        "password": creds.redis_password.get_secret_value(),
    }


def test_settings_output_masks_url_passwords_and_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = Settings(
        redis_url="redis://app:url-Secret-1@127.0.0.1:29379/0",
        kafka_sasl_password=SecretStr("sasl-Secret-2"),
    )
    shown = json.dumps(s.public_dump())
    assert "url-Secret-1" not in shown and "sasl-Secret-2" not in shown
    assert "redis://app:***@127.0.0.1:29379/0" in shown
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_command_errors_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    from demandcast import cli

    monkeypatch.setenv("DEMANDCAST_REDIS_PASSWORD", "redis-Secret-3")
    cli.get_settings.cache_clear()
    try:
        text = cli._redacted("AUTH failed for redis-Secret-3 at redis://u:other-Pw-4@h:1/0")
    finally:
        cli.get_settings.cache_clear()
    assert "redis-Secret-3" not in text and "other-Pw-4" not in text


def test_redis_user_name_goes_only_with_a_password() -> None:
    s = Settings(redis_username="bob", redis_password=SecretStr(GIVEN))
    assert s.redis_kwargs() == {"username": "bob", "password": GIVEN}
    # settings that drop the password (the chaos stack's, plaintext) send no user name
    assert s.model_copy(update={"redis_password": None}).redis_kwargs() == {}


def test_tls_configuration(tmp_path: Path) -> None:
    from streams.stack.secure import client_env, ensure_tls, redis_tls_lines, tls_files

    assert tls_files(tmp_path) is None
    tls = ensure_tls(tmp_path)
    assert tls_files(tmp_path) == tls and ensure_tls(tmp_path) == tls  # made once
    assert stat.S_IMODE(tls.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(tls.keystore.stat().st_mode) == 0o600
    creds = ensure_credentials(Settings(), tmp_path)
    props = "\n".join(kafka_listener_properties(creds, "127.0.0.1", 29101, 29102, tls))
    assert "listeners=SASL_SSL://127.0.0.1:29101" in props and "SASL_PLAINTEXT://" not in props
    assert f"ssl.keystore.location={tls.keystore}" in props
    assert "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512" in props
    lines = redis_tls_lines(tls, 29103)
    assert "port 0" in lines and "tls-port 29103" in lines
    env = client_env(Settings(stack_redis_port=29103), creds, tls)
    assert env["DEMANDCAST_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["DEMANDCAST_REDIS_URL"] == "rediss://127.0.0.1:29103/0"
    s = client_settings(Settings(redis_url="redis://127.0.0.1:29103/0"), creds, tls)
    assert s.kafka_client_config()["ssl.ca.location"] == str(tls.ca)
    assert s.redis_kwargs()["ssl_ca_certs"] == str(tls.ca)
