"""`mlpower lab up`'s secure defaults, piece by piece: loopback listen addresses (or the one chosen),
moved ports, random secrets stored 0600 (never a placeholder, never the example file's), the lab's
own broker user made through rabbitmqctl's standard input, credentials kept out of the services'
environment."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from mlpower.broker_permissions import accounts
from mlpower.lab import credentials, procs
from mlpower.lab.errors import LabError
from mlpower.lab.local_lab import _with_credentials, plan
from mlpower.lab.settings import LabSettings
from mlpower.settings import load_settings

ADMIN = "amqp://admin:admin-pw-0123456789@127.0.0.1:5672/lab%2Fvhost"

SECRETS = {"MLPOWER_API_TOKEN": "t" * 43, "RABBITMQ_PASSWORD": "p" * 43}
"""What lab up hands plan(): its generated secrets (deploy/.env.example ships none)."""


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabSettings:
    for name in list(os.environ):
        if name.startswith(("MLPOWER_", "RABBITMQ_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLPOWER_LAB_DIR", str(tmp_path / "lab"))
    return load_settings(LabSettings)


@pytest.fixture
def rabbitmqctl(tmp_path: Path) -> tuple[str, Path]:
    """A stand-in for rabbitmqctl that records each call's arguments and standard input."""
    calls = tmp_path / "calls.jsonl"
    script = tmp_path / "fake-rabbitmqctl"
    script.write_text(f"""#!{sys.executable}
import json, sys
stdin = sys.stdin.read()
with open({str(calls)!r}, "a") as out:
    out.write(json.dumps({{"args": sys.argv[1:], "stdin": stdin}}) + "\\n")
if "add_user" in sys.argv and "exists" in sys.argv[0]:
    sys.exit(70)
""")
    script.chmod(0o755)
    return str(script), calls


def _calls(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_listen_addresses_become_loopback_or_the_chosen_address(settings: LabSettings) -> None:
    hosts = {name: {k: v for k, v in service.env.items() if k.endswith("_HOST")} for name, service in
             plan(settings, secrets=SECRETS).items()}
    assert all(value == "127.0.0.1" for env in hosts.values() for value in env.values()), hosts
    assert set().union(*hosts.values()) >= {"MLPOWER_DIRECTOR_HOST", "MLPOWER_SIM_HOST", "MLPOWER_AGENT_HOST",
                                            "MLPOWER_ANALYTICS_HOST", "MLPOWER_FIGURES_HOST"}
    chosen = plan(settings, secrets=SECRETS, bind_address="192.0.2.7")
    assert chosen["director"].env["MLPOWER_DIRECTOR_HOST"] == "192.0.2.7"
    assert chosen["director"].env["MLPOWER_ANALYZER"] == "TCPIP0::127.0.0.1::10001::SOCKET"  # clients still local


def test_a_port_offset_moves_every_port_and_every_address_of_one(settings: LabSettings,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPOWER_LAB_PORT_OFFSET", "300")
    moved = load_settings(LabSettings)
    assert (moved.director_url, moved.analytics_url, moved.figures_url) == (
        "http://127.0.0.1:8300", "http://127.0.0.1:8301", "http://127.0.0.1:8302")
    services = plan(moved, secrets=SECRETS)
    assert services["director"].env["MLPOWER_POWERDEV_PORT"] == "5250"
    assert services["director"].env["MLPOWER_ANALYZER"] == "TCPIP0::127.0.0.1::10301::SOCKET"
    assert services["sut-agent"].env["MLPOWER_AGENT_SERVER"] == "127.0.0.1:5250"
    assert services["analyzer-sim"].env["MLPOWER_SIM_PORT"] == "10301"
    assert [s.health_url for s in services.values()] == [
        s.health_url.replace(":80", ":83") for s in plan(settings, secrets=SECRETS).values()]  # type: ignore[union-attr]
    assert services["director"].env["AMQP_URL"] == moved.amqp_url  # the broker is not the lab's to move


@pytest.mark.parametrize("variable", ["MLPOWER_API_TOKEN", "RABBITMQ_PASSWORD"])
def test_a_placeholder_secret_is_refused_never_used(tmp_path: Path, variable: str,
                                                     rabbitmqctl: tuple[str, Path]) -> None:
    with pytest.raises(LabError, match=f"{variable} is a placeholder"):
        credentials.ensure(tmp_path, lab="l", admin_url=ADMIN, account="create", rabbitmqctl=rabbitmqctl[0],
                           given={variable: "change-me-please"})
    assert not (tmp_path / "secrets" / "mlpower_api_token").exists()


def test_secrets_are_random_stored_0600_and_reused(tmp_path: Path, rabbitmqctl: tuple[str, Path]) -> None:
    ctl, calls = rabbitmqctl
    first = credentials.ensure(tmp_path, lab="lab1", admin_url=ADMIN, account="create", rabbitmqctl=ctl, given={})
    assert len(first.api_token) >= 40 and len(first.broker_password) >= 40 and first.api_token != first.broker_password
    assert stat.S_IMODE(first.folder.stat().st_mode) == 0o700
    for path in (first.token_path, first.password_path, first.amqp_url_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    user = credentials.broker_user("lab1", ADMIN, tmp_path)
    assert user.startswith("mlpower-lab1-") and len(user) == len("mlpower-lab1-") + 8
    assert first.amqp_url == f"amqp://{user}:{first.broker_password}@127.0.0.1:5672/lab%2Fvhost"
    assert first.amqp_url_path.read_text() == first.amqp_url and first.created_user
    again = credentials.ensure(tmp_path, lab="lab1", admin_url=ADMIN, account="create", rabbitmqctl=ctl, given={})
    assert (again.api_token, again.broker_password) == (first.api_token, first.broker_password)
    chosen = credentials.ensure(tmp_path, lab="lab1", admin_url=ADMIN, account="create", rabbitmqctl=ctl,
                                given={"MLPOWER_API_TOKEN": "tok-chosen-by-the-user-0001"})
    assert chosen.api_token == "tok-chosen-by-the-user-0001" and chosen.token_path.read_text() == chosen.api_token
    made = _calls(calls)[:2]
    assert made[0] == {"args": ["-q", "add_user", user], "stdin": first.broker_password}
    rights = [credentials.BROKER_PERMISSION] * 3
    assert made[1]["args"] == ["-q", "set_permissions", "-p", "lab/vhost", user, *rights]
    assert all(first.broker_password not in " ".join(call["args"]) for call in _calls(calls))  # type: ignore[arg-type]
    # each service's own user: the table's rights, a fresh password of its own (the latest lab up's), by stdin only
    table = accounts("lab1", ["sut1"])
    assert first.service_accounts == tuple(table)
    for name, rights in table.items():
        own = next(c for c in reversed(_calls(calls)) if c["args"] == ["-q", "add_user", f"{user}-{name}"])
        assert own["stdin"] not in (first.broker_password, "") and own["stdin"] in \
            first.service_url_path(name).read_text()
        assert {"args": ["-q", "set_permissions", "-p", "lab/vhost", f"{user}-{name}", rights.configure,
                         rights.write, rights.read], "stdin": ""} in _calls(calls)
    assert credentials.forget_broker_user(tmp_path) == user
    deleted = [c["args"][-1] for c in _calls(calls) if c["args"][:2] == ["-q", "delete_user"]]
    assert sorted(deleted) == sorted([user, *(f"{user}-{name}" for name in table)]) and deleted[-1] == user
    assert credentials.forget_broker_user(tmp_path) is None


def test_an_existing_broker_user_gets_the_password_through_stdin(tmp_path: Path,
                                                                 rabbitmqctl: tuple[str, Path]) -> None:
    ctl, calls = rabbitmqctl
    exists = Path(ctl).with_name("fake-rabbitmqctl-exists")
    exists.write_text(Path(ctl).read_text().replace("sys.exit(70)", "print('Error: user already exists', "
                                                                     "file=sys.stderr); sys.exit(70)"))
    exists.chmod(0o755)
    creds = credentials.ensure(tmp_path, lab="l2", admin_url=ADMIN, account="create", rabbitmqctl=str(exists),
                               given={})
    args = [call["args"] for call in _calls(calls)]
    assert args[1] == ["-q", "change_password", creds.broker_user]
    assert _calls(calls)[1]["stdin"] == creds.broker_password


def test_a_remote_broker_needs_the_given_account(tmp_path: Path, rabbitmqctl: tuple[str, Path]) -> None:
    remote = "amqp://admin:admin-pw-0123456789@broker.example:5672/"
    with pytest.raises(LabError, match="MLPOWER_LAB_BROKER_ACCOUNT=given"):
        credentials.ensure(tmp_path, lab="l", admin_url=remote, account="create", rabbitmqctl=rabbitmqctl[0], given={})
    given = credentials.ensure(tmp_path, lab="l", admin_url=remote, account="given", rabbitmqctl="absent", given={})
    assert given.amqp_url == remote and not given.created_user and given.amqp_url_path.read_text() == remote
    with pytest.raises(LabError, match="cannot run /nonexistent/rabbitmqctl"):
        credentials.ensure(tmp_path, lab="l", admin_url=ADMIN, account="create", rabbitmqctl="/nonexistent/rabbitmqctl",
                           given={})


def test_services_read_the_broker_url_from_a_file_and_inherit_no_credential(
        settings: LabSettings, tmp_path: Path, rabbitmqctl: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    creds = credentials.ensure(tmp_path / "lab", lab="l", admin_url=ADMIN, account="create",
                               rabbitmqctl=rabbitmqctl[0], given={})
    service = _with_credentials(plan(settings, secrets=SECRETS)["analytics"], creds)
    own = creds.folder / "amqp_url_analytics"
    assert "AMQP_URL" not in service.env and service.env["AMQP_URL_FILE"] == str(own.resolve())
    assert "-analytics:" in own.read_text() and stat.S_IMODE(own.stat().st_mode) == 0o600
    director = _with_credentials(plan(settings, secrets=SECRETS)["director"], creds)
    assert director.env["AMQP_URL_FILE"].endswith("amqp_url_director-sut1")
    assert service.env["MLPOWER_API_TOKEN_FILE"].endswith("secrets/mlpower_api_token")
    monkeypatch.setenv("AMQP_URL", ADMIN)
    monkeypatch.setenv("MLPOWER_API_TOKEN", "tok-of-the-shell-0123456789")
    monkeypatch.setenv("KEPT", "yes")
    out = tmp_path / "env.json"
    started = procs.start("probe", [sys.executable, "-c", f"import json, os; json.dump(dict(os.environ), "
                                    f"open({str(out)!r}, 'w'))"], service.env, tmp_path / "logs", None)
    os.waitpid(started.pid, 0)
    seen = json.loads(out.read_text())
    assert "AMQP_URL" not in seen and "MLPOWER_API_TOKEN" not in seen and seen["KEPT"] == "yes"
    assert seen["AMQP_URL_FILE"] == service.env["AMQP_URL_FILE"]


def test_two_labs_of_one_name_never_share_a_broker_user(tmp_path: Path) -> None:
    # broker users are broker-wide: every engineer's default lab is called "lab", in a vhost and a
    # folder of its own; one lab down must not delete (and disconnect) another lab's account
    here, there = tmp_path / "a" / ".lab", tmp_path / "b" / ".lab"
    users = {credentials.broker_user("lab", url, folder) for url in (ADMIN, "amqp://u:p@127.0.0.1:5672/other")
             for folder in (here, there)}
    assert len(users) == 4 and all(user.startswith("mlpower-lab-") for user in users)
    assert credentials.broker_user("lab", ADMIN, here) == credentials.broker_user("lab", ADMIN, here)  # lab up again
