from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlpower import topology
from mlpower.errors import SettingsError
from mlpower.runstream import RunStream, read_documents
from mlpower.settings import ServiceSettings, load_settings


def test_invalid_amqp_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "nonsense")
    with pytest.raises(SettingsError, match="^invalid setting AMQP_URL: "):
        load_settings(ServiceSettings)


def test_secret_file_supplies_a_credential(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("MLPOWER_API_TOKEN_FILE", str(secret))
    monkeypatch.delenv("MLPOWER_API_TOKEN", raising=False)
    settings = load_settings(ServiceSettings)
    assert settings.api_token == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize("placeholder", ["change-me-api-token", "CHANGE_ME", "changeme123", "<your token>",
                                         "xxxx", "secret", "Password", "replace-me", "placeholder", "..."])
def test_a_placeholder_token_is_refused_naming_the_variable(placeholder: str, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.delenv("MLPOWER_API_TOKEN_FILE", raising=False)
    monkeypatch.setenv("MLPOWER_API_TOKEN", placeholder)
    with pytest.raises(SettingsError, match="^invalid setting MLPOWER_API_TOKEN: .*placeholder") as raised:
        load_settings(ServiceSettings)
    assert "\n" not in str(raised.value)
    monkeypatch.delenv("MLPOWER_API_TOKEN")
    secret = tmp_path / "token"
    secret.write_text(placeholder + "\n")
    monkeypatch.setenv("MLPOWER_API_TOKEN_FILE", str(secret))
    with pytest.raises(SettingsError, match="^invalid setting MLPOWER_API_TOKEN_FILE: .*placeholder"):
        load_settings(ServiceSettings)


def test_a_placeholder_broker_password_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://mlpower:change-me-broker-password@rabbitmq:5672/%2F")
    with pytest.raises(SettingsError, match="^invalid setting AMQP_URL: .*placeholder") as raised:
        load_settings(ServiceSettings)
    assert "change-me-broker-password" not in str(raised.value)


@pytest.mark.parametrize("real", ["s3cret", "tok-9f2c7e1d-security-test",
                                  "Kq0vZ3_yN8x-2Lm7fQwE1rT5uI9oP4aSdF6gH8jJ0kL"])
def test_real_secrets_pass(real: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPOWER_API_TOKEN_FILE", raising=False)
    monkeypatch.setenv("MLPOWER_API_TOKEN", real)
    monkeypatch.setenv("AMQP_URL", f"amqp://lab:{real}@127.0.0.1:5672/")
    settings = load_settings(ServiceSettings)
    assert settings.api_token == real


def test_mlpower_help_lists_the_services() -> None:
    out = subprocess.run([sys.executable, "-m", "mlpower", "--help"], capture_output=True, text=True, check=True)
    for name in ("sim", "ptd", "director", "agent", "analytics", "figures", "check", "demo", "lab"):
        assert f" {name} " in out.stdout


def test_invalid_setting_exits_non_zero_with_one_line_naming_it() -> None:
    env = {**os.environ, "AMQP_URL": "nonsense"}
    done = subprocess.run([sys.executable, "-m", "mlpower", "analytics", "--help"], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0  # help needs no settings
    done = subprocess.run([sys.executable, "-m", "mlpower", "schemas", "check"], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0
    done = subprocess.run([sys.executable, "-c", "from mlpower.cli import run; from mlpower.settings import *;"
                           "run(lambda: load_settings(ServiceSettings))"], capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "AMQP_URL" in done.stderr


def test_topic_matching_follows_amqp_rules() -> None:
    assert topology.topic_matches("lab.*.wt310e.#", "lab.sut1.wt310e.run1")
    assert topology.topic_matches("#", "a")
    assert topology.topic_matches("a.#", "a")
    assert not topology.topic_matches("a.*", "a")
    assert not topology.topic_matches("lab.*.x", "lab.sut1.wt310e")
    key = topology.run_key("my lab", "sut.1", "a*", "r#1")
    assert key == f"my_lab.sut_1.a_.r_1.s{topology.run_shard('r_1'):02d}"
    assert topology.topic_matches(topology.runs_of_lab("my lab"), key)
    shards = [s for s in range(topology.RUN_SHARDS) if topology.topic_matches(topology.runs_of_shard("my lab", s), key)]
    assert shards == [topology.run_shard("r#1")]
    assert not topology.topic_matches(topology.runs_of_lab("my lab"), topology.run_key("other", "s", "a", "r"))


def test_run_stream_numbers_documents_and_replays_from_jsonl(tmp_path: Path) -> None:
    log = tmp_path / "documents.jsonl"
    stream = RunStream(None, dict(run_id="r1", lab="lab", sut="sut", analyzer="sim", t_utc_s=1.0), log_path=log)
    stream.descriptor(stream="a", source={"kind": "simulator"}, sample_interval_s=1.0)
    stream.page("a", mode="testing", t_utc_s=[1.0], power_w=[2.0], voltage_v=[230.0], current_a=[0.1],
                power_factor=[1.0], voltage_range_v=[300.0], current_range_a=[1.0], uncertainty_w=[0.01], flags=[0])
    stream.mark("power_begin", t_utc_s=1.0)
    stop = stream.stop("success")
    assert (stop.pages, stop.samples, stop.marks) == (1, 1, 1)
    documents = list(read_documents(log))
    assert [d.seq for d in documents] == [0, 1, 2, 3, 4]
    assert documents[-1] == stop
    log.write_bytes(log.read_bytes() + b"garbage\n")
    with pytest.raises(ValueError, match=r"documents.jsonl:6"):
        list(read_documents(log))
