"""mlpower.compose_secrets: one broker user per compose service, its URL in its own file, and a
definitions file of hashes that the broker loads."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from mlpower.broker_definitions import DefinitionsError, hash_matches
from mlpower.broker_permissions import accounts
from mlpower.compose_secrets import DEFINITIONS_FILE, main, make, operator_rights


def test_every_account_gets_its_own_user_and_the_broker_only_hashes(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    made = make(folder, lab="lab", sut="sut1", admin_user="root-of-lab", admin_password="Zq3-9vB" * 6)
    assert made == [*accounts("lab", ["sut1"]), "operator"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    text = (folder / DEFINITIONS_FILE).read_text()
    document = json.loads(text)
    hashes = {user["name"]: user["password_hash"] for user in document["users"]}
    names = set()
    for account in made:
        path = folder / f"amqp-url-{account}"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        url = urlsplit(path.read_text())
        user, password = unquote(url.username or ""), unquote(url.password or "")
        assert url.hostname == "rabbitmq" and url.port == 5672 and user == f"mlpower-lab-{account}"
        assert password not in text and hash_matches(password, hashes[user])
        names.add(user)
    assert len(names) == len(made)
    assert "Zq3-9vB" * 6 not in text and hash_matches("Zq3-9vB" * 6, hashes["root-of-lab"])
    rights = {p["user"]: p for p in document["permissions"]}
    assert rights["mlpower-lab-operator"]["read"] == operator_rights("lab").read
    assert operator_rights("lab").matches("read", "mlpower.runs") and not operator_rights("lab").matches(
        "write", "mlpower.commands")


@pytest.mark.parametrize("password", ["", "change-me-broker-password"])
def test_an_empty_or_placeholder_admin_password_is_refused(tmp_path: Path, password: str) -> None:
    with pytest.raises(DefinitionsError, match="RABBITMQ"):
        make(tmp_path, lab="lab", sut="sut1", admin_user="mlpower", admin_password=password)
    assert not list(tmp_path.iterdir())


def test_the_command_reads_the_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("RABBITMQ_PASSWORD", "RABBITMQ_USER", "MLPOWER_LAB", "MLPOWER_SUT", "MLPOWER_SECRETS_DIR"):
        monkeypatch.delenv(name, raising=False)
    env = tmp_path / "compose.env"
    env.write_text("RABBITMQ_PASSWORD=" + "x7_Tk" * 8 + "\nMLPOWER_SUT=gpu-b\n")
    assert main(["--env-file", str(env), "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "amqp-url-director-gpu-b").is_file()
    assert "x7_Tk" not in capsys.readouterr().out
