"""The broker's users and permissions as a RabbitMQ definitions file, made from
``mlpower.broker_permissions``' table, so a broker starts with every service's own user
(``load_definitions`` in its configuration) instead of an operator typing ``rabbitmqctl`` lines.

The file carries password *hashes* only (``rabbit_password_hashing_sha256``: base64 of a 4-byte
salt followed by SHA-256(salt + password), what RabbitMQ itself stores), never a password. It is
made where the passwords are: from the broker URLs the services log in with (one file per account,
``amqp-url-<account>``, as the Kubernetes Secret and ``mlpower lab up`` keep them), so the user
name and password in each URL are the ones the broker learns, and nothing is typed twice.

A broker that loads definitions at boot creates no default user, so the file also carries the
bootstrap administrator (all rights on the vhost, tag ``administrator``), from its own two files.

    python -m mlpower.broker_definitions --lab lab1 --sut sim-a --sut gpu-b \\
        --secrets /run/secrets/mlpower --out /definitions/definitions.json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mlpower.broker_permissions import Permissions, accounts
from mlpower.secrets import PLACEHOLDER_HINT, is_placeholder

HASHING = "rabbit_password_hashing_sha256"
SALT_BYTES = 4  # RabbitMQ's own salt length
ADMIN_USER_FILE = "rabbitmq-user"
ADMIN_PASSWORD_FILE = "rabbitmq-password"
URL_FILE_PREFIX = "amqp-url-"
EVERYTHING = Permissions(".*", ".*", ".*")


class DefinitionsError(ValueError):
    """A missing or malformed secret; the message names the file, never its content."""


@dataclass(frozen=True)
class BrokerUser:
    name: str
    password: str
    permissions: Permissions
    administrator: bool = False

    def __repr__(self) -> str:  # a traceback or log line never shows the password
        return f"BrokerUser({self.name!r}, administrator={self.administrator})"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256`` hash of ``password`` (a random salt unless given)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode("utf-8")).digest()).decode("ascii")


def hash_matches(password: str, hashed: str) -> bool:
    raw = base64.b64decode(hashed)
    salt, digest = raw[:SALT_BYTES], raw[SALT_BYTES:]
    return hmac.compare_digest(digest, hashlib.sha256(salt + password.encode("utf-8")).digest())


def definitions(users: list[BrokerUser], vhost: str) -> dict[str, Any]:
    """The definitions document: the vhost, each user with its hash, and its permissions there."""
    return {
        "users": [{"name": user.name, "password_hash": password_hash(user.password), "hashing_algorithm": HASHING,
                   "tags": ["administrator"] if user.administrator else []} for user in users],
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": user.name, "vhost": vhost, "configure": user.permissions.configure,
                         "write": user.permissions.write, "read": user.permissions.read} for user in users],
    }


def _account(url: str, source: str) -> tuple[str, str, str]:
    """User, password and vhost of a broker URL; ``source`` names it in errors (the URL never appears)."""
    try:
        parts = urlsplit(url)
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
    except ValueError:
        user = password = ""
    if not user or not password:
        raise DefinitionsError(f"{source}: not an amqp://user:password@host/vhost URL")
    if is_placeholder(password):  # a broker reachable from outside the cluster must never learn 'change-me'
        raise DefinitionsError(f"{source}: its password {PLACEHOLDER_HINT}")
    path = parts.path
    return user, password, unquote(path[1:]) if len(path) > 1 else "/"


def service_users(lab: str, suts: list[str], urls: Mapping[str, str]) -> tuple[list[BrokerUser], str]:
    """Every account of the lab (``broker_permissions.accounts``) as a user with its URL's name and
    password, and the one vhost they share; ``urls`` by account name."""
    users, vhosts = [], set()
    for account, granted in accounts(lab, suts).items():
        if account not in urls:
            raise DefinitionsError(f"no broker URL for the account {account} ({URL_FILE_PREFIX}{account})")
        user, password, vhost = _account(urls[account], f"{URL_FILE_PREFIX}{account}")
        users.append(BrokerUser(user, password, granted))
        vhosts.add(vhost)
    if len(vhosts) != 1:
        raise DefinitionsError(f"the accounts' URLs name {len(vhosts)} virtual hosts: one lab, one vhost")
    names = [user.name for user in users]
    if len(set(names)) != len(names):
        raise DefinitionsError("two accounts' URLs name the same user: each service needs its own")
    return users, vhosts.pop()


def _read(folder: Path, name: str) -> str:
    try:
        return (folder / name).read_text(encoding="utf-8").strip()
    except FileNotFoundError as exc:
        raise DefinitionsError(f"{folder / name}: missing") from exc
    except OSError as exc:
        raise DefinitionsError(f"{folder / name}: {exc.strerror}") from exc


def from_folder(folder: Path, lab: str, suts: list[str]) -> dict[str, Any]:
    """The definitions from a secrets folder: ``amqp-url-<account>`` for every account, and the
    administrator's ``rabbitmq-user`` and ``rabbitmq-password``."""
    urls = {account: _read(folder, URL_FILE_PREFIX + account) for account in accounts(lab, suts)}
    users, vhost = service_users(lab, suts, urls)
    admin = BrokerUser(_read(folder, ADMIN_USER_FILE), _read(folder, ADMIN_PASSWORD_FILE), EVERYTHING,
                       administrator=True)
    if not admin.name or not admin.password:
        raise DefinitionsError(f"{folder}: {ADMIN_USER_FILE} and {ADMIN_PASSWORD_FILE} must not be empty")
    if is_placeholder(admin.password):
        raise DefinitionsError(f"{folder / ADMIN_PASSWORD_FILE} {PLACEHOLDER_HINT}")
    if admin.name in {user.name for user in users}:
        raise DefinitionsError(f"the administrator {admin.name} cannot also be a service's user")
    return definitions([admin, *users], vhost)


def write_definitions(path: Path, document: Mapping[str, Any]) -> None:
    """Written for its owner only (0600 from the start): hashes are still secrets worth keeping."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1)
    path.chmod(0o600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlpower.broker_definitions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", required=True)
    parser.add_argument("--sut", action="append", default=[], help="a SUT of the lab (repeat)")
    parser.add_argument("--secrets", type=Path, required=True, help="folder of amqp-url-<account> and rabbitmq-* files")
    parser.add_argument("--out", type=Path, required=True, help="the definitions file to write")
    args = parser.parse_args(argv)
    try:
        write_definitions(args.out, from_folder(args.secrets, args.lab, args.sut))
    except DefinitionsError as exc:
        parser.exit(2, f"broker definitions: {exc}\n")
    print(f"broker definitions: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
