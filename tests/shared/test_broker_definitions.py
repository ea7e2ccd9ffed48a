"""mlpower.broker_definitions: the definitions file a broker loads at start, made from the broker
URLs and the permission table; hashes that verify against the passwords, and, loaded into the
real RabbitMQ, users that do their service's work and get 403 on anything else."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import pytest
from mlpower import broker_definitions as bd
from mlpower import topology
from mlpower.broker_permissions import accounts, permissions
from mlpower.rabbitmq import LabTopology, declare_queue, declare_topology
from pika.exceptions import ChannelClosedByBroker, ProbableAuthenticationError

from .test_broker_permissions import PUBLISHES, own_queues

SERVICE_OF = {"director": "director", "sut-agent": "sut_agent", "analytics": "analytics", "figures": "figures",
              "analyzer-sim": "analyzer_sim"}


def _url(base: str, user: str, password: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:"
                       f"{parts.port or 5672}", parts.path, "", ""))


def _secrets_folder(folder: Path, base_url: str, lab: str, suts: list[str], prefix: str) -> dict[str, str]:
    """The files an operator's Secret holds: each account's URL, and the administrator's name and password."""
    passwords = {}
    for account in accounts(lab, suts):
        passwords[account] = secrets.token_urlsafe(18)
        (folder / f"amqp-url-{account}").write_text(_url(base_url, f"{prefix}-{account}", passwords[account]) + "\n")
    (folder / "rabbitmq-user").write_text(f"{prefix}-admin")
    passwords["admin"] = secrets.token_urlsafe(18)
    (folder / "rabbitmq-password").write_text(passwords["admin"])
    return passwords


def test_hash_is_rabbitmqs_sha256_and_verifies() -> None:
    salt = bytes.fromhex("908dc60a")
    hashed = bd.password_hash("test12", salt)
    raw = base64.b64decode(hashed)
    assert raw[:4] == salt and len(raw) == 4 + 32
    assert bd.hash_matches("test12", hashed)
    assert not bd.hash_matches("test13", hashed)
    assert bd.password_hash("test12") != bd.password_hash("test12")  # a fresh salt each time


def test_definitions_from_a_folder(tmp_path: Path) -> None:
    lab, suts = "lab1", ["sim-a", "gpu.b"]
    passwords = _secrets_folder(tmp_path, "amqp://x@rabbitmq:5672/%2F", lab, suts, "mlpower-lab1")
    document = bd.from_folder(tmp_path, lab, suts)
    text = json.dumps(document)
    assert not any(password in text for password in passwords.values())  # hashes only
    users = {user["name"]: user for user in document["users"]}
    assert set(users) == {"mlpower-lab1-admin", *(f"mlpower-lab1-{a}" for a in accounts(lab, suts))}
    for account in accounts(lab, suts):
        user = users[f"mlpower-lab1-{account}"]
        assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256" and user["tags"] == []
        assert bd.hash_matches(passwords[account], user["password_hash"])
    assert users["mlpower-lab1-admin"]["tags"] == ["administrator"]
    assert bd.hash_matches(passwords["admin"], users["mlpower-lab1-admin"]["password_hash"])
    assert document["vhosts"] == [{"name": "/"}]
    granted = {p["user"]: p for p in document["permissions"]}
    agent = permissions("sut_agent", lab=lab, sut="gpu.b")
    assert granted["mlpower-lab1-sut-agent-gpu.b"] == {"user": "mlpower-lab1-sut-agent-gpu.b", "vhost": "/",
                                                       "configure": agent.configure, "write": agent.write,
                                                       "read": agent.read}
    assert granted["mlpower-lab1-admin"]["configure"] == ".*"


def test_errors_name_the_file_never_its_content(tmp_path: Path) -> None:
    lab, suts = "lab1", ["a"]
    _secrets_folder(tmp_path, "amqp://x@rabbitmq:5672/%2F", lab, suts, "u")
    (tmp_path / "amqp-url-figures").write_text("amqp://only-a-secret-looking-name@rabbitmq/")
    with pytest.raises(bd.DefinitionsError) as bad:
        bd.from_folder(tmp_path, lab, suts)
    assert "amqp-url-figures" in str(bad.value) and "secret-looking" not in str(bad.value)
    (tmp_path / "amqp-url-figures").unlink()
    with pytest.raises(bd.DefinitionsError, match="amqp-url-figures: missing"):
        bd.from_folder(tmp_path, lab, suts)


def test_one_user_per_account_and_one_vhost(tmp_path: Path) -> None:
    lab, suts = "lab1", ["a"]
    _secrets_folder(tmp_path, "amqp://x@rabbitmq:5672/%2F", lab, suts, "u")
    (tmp_path / "amqp-url-figures").write_text((tmp_path / "amqp-url-analytics").read_text())
    with pytest.raises(bd.DefinitionsError, match="same user"):
        bd.from_folder(tmp_path, lab, suts)
    (tmp_path / "amqp-url-figures").write_text("amqp://u-figures:pw@rabbitmq:5672/other")
    with pytest.raises(bd.DefinitionsError, match="2 virtual hosts"):
        bd.from_folder(tmp_path, lab, suts)


def test_command_line_writes_an_owner_only_file(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    _secrets_folder(folder, "amqp://x@rabbitmq:5672/%2F", "lab1", ["a"], "u")
    out = tmp_path / "out" / "definitions.json"
    assert bd.main(["--lab", "lab1", "--sut", "a", "--secrets", str(folder), "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert len(json.loads(out.read_text())["users"]) == 1 + len(accounts("lab1", ["a"]))
    (folder / "rabbitmq-password").unlink()
    with pytest.raises(SystemExit) as failed:
        bd.main(["--lab", "lab1", "--sut", "a", "--secrets", str(folder), "--out", str(out)])
    assert failed.value.code == 2


def _ctl(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", "-q", *args], input=stdin, capture_output=True, text=True, timeout=120)


@pytest.fixture
def imported(amqp_url: str, unique: str, tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """The definitions of a lab on the test's vhost, imported into the real broker; the users'
    URLs by account. Every user is deleted afterwards."""
    lab, sut = f"lab{unique}", f"sut{unique}"
    _secrets_folder(tmp_path, amqp_url, lab, [sut], f"pytest-{unique}")
    document = bd.from_folder(tmp_path, lab, [sut])
    result = _ctl("import_definitions", "--format", "json", stdin=json.dumps(document))
    try:
        assert result.returncode == 0, result.stderr[-2000:]
        urls = {account: (tmp_path / f"amqp-url-{account}").read_text().strip() for account in accounts(lab, [sut])}
        urls["admin"] = _url(amqp_url, f"pytest-{unique}-admin", (tmp_path / "rabbitmq-password").read_text())
        yield lab, sut, urls
    finally:
        for user in document["users"]:
            _ctl("delete_user", user["name"])


@pytest.mark.slow
def test_loaded_definitions_give_each_service_its_work_and_403_elsewhere(
        imported: tuple[str, str, dict[str, str]], amqp_url: str, unique: str) -> None:
    lab, sut, urls = imported
    declared: list[str] = []
    for account, url in urls.items():
        if account == "admin":
            continue
        service = SERVICE_OF[account.removesuffix(f"-{sut}")]
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            declare_topology(channel, LabTopology(lab))
            for spec in own_queues(service, lab, sut):
                declared.append(declare_queue(channel, spec, LabTopology(lab)))
                channel.basic_cancel(channel.basic_consume(queue=declared[-1], on_message_callback=lambda *_: None))
            for exchange in PUBLISHES[service]:
                channel.basic_publish(exchange, f"definitions-test-{unique}", b"{}")
        finally:
            connection.close()
    refused = [(f"sut-agent-{sut}", "publish", topology.RUNS_EXCHANGE),
               ("analyzer-sim", "publish", topology.COMMANDS_EXCHANGE),
               (f"sut-agent-{sut}", "consume", topology.run_shard_queues("analytics", lab)[0].name),
               ("figures", "consume", f"mlpower.{lab}.director-{sut}.commands")]
    for account, action, target in refused:
        connection = pika.BlockingConnection(pika.URLParameters(urls[account]))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            with pytest.raises(ChannelClosedByBroker) as error:
                if action == "publish":
                    channel.basic_publish(target, f"definitions-test-{unique}", b"{}")
                else:
                    channel.basic_consume(queue=target, on_message_callback=lambda *_: None)
            assert error.value.reply_code == 403, (account, action, target, error.value)
        finally:
            if connection.is_open:
                connection.close()
    with pytest.raises(ProbableAuthenticationError):  # the hash is of the URL's password, no other
        pika.BlockingConnection(pika.URLParameters(_url(amqp_url, f"pytest-{unique}-figures", "wrong")))
    admin = pika.BlockingConnection(pika.URLParameters(urls["admin"]))
    try:
        channel = admin.channel()
        for name in declared:
            channel.queue_delete(name)
    finally:
        admin.close()


@pytest.mark.parametrize("file, text", [("amqp-url-figures", "amqp://u-figures:change-me@rabbitmq:5672/%2F"),
                                        ("rabbitmq-password", "<password>")])
def test_a_placeholder_password_is_refused_naming_the_file_not_the_value(tmp_path: Path, file: str,
                                                                          text: str) -> None:
    lab, suts = "lab1", ["a"]
    _secrets_folder(tmp_path, "amqp://x@rabbitmq:5672/%2F", lab, suts, "u")
    (tmp_path / file).write_text(text)
    with pytest.raises(bd.DefinitionsError, match="placeholder") as bad:
        bd.from_folder(tmp_path, lab, suts)
    assert file in str(bad.value) and "change-me" not in str(bad.value) and "<password>" not in str(bad.value)
