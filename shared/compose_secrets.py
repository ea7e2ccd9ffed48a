"""The compose lab's broker secrets: one user per service, as ``deploy/compose.yaml`` hands them out.

Makes, in one folder (``deploy/secrets`` by default; compose reads it as ``MLPOWER_SECRETS_DIR``):

- ``amqp-url-<account>`` for every account of ``mlpower.broker_permissions`` (the director and the
  agent of the lab's SUT, analytics, figures, the simulator), user ``mlpower-<lab>-<account>``
  with a fresh random password at each run, and ``amqp-url-operator`` for ``lab-run`` (it follows
  the run on the broker: exclusive queues bound to the runs and events exchanges, nothing else);
- ``rabbitmq-definitions.json``: those users' password hashes and rights plus the administrator
  (``RABBITMQ_USER`` / ``RABBITMQ_PASSWORD``), which the broker loads at boot
  (``deploy/rabbitmq/definitions.conf``); never a password in it.

Compose hands each service only its own URL file (``secrets:`` with ``file:``) and the service
reads it as ``AMQP_URL_FILE``, so no broker password is in any container's environment.

Modes: plain Compose bind-mounts a secret file with the host file's owner and mode, and the
containers run as other users (uid 10001 for mlpower, the broker's own rabbitmq user). The folder
is 0700, so on the host only its owner reaches the files; the files inside are 0644 so that the
containers can read their one bind-mounted file whatever uid they run as (a chown to 10001 would
need root here and still not fit the broker's user).

    python -m mlpower.compose_secrets --env-file deploy/.env            # before docker compose up
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from mlpower import topology
from mlpower.broker_definitions import (
    EVERYTHING,
    URL_FILE_PREFIX,
    BrokerUser,
    DefinitionsError,
    definitions,
    service_users,
    write_definitions,
)
from mlpower.broker_permissions import Permissions, accounts, permissions
from mlpower.secrets import PLACEHOLDER_HINT, is_placeholder, new_secret

DEFINITIONS_FILE = "rabbitmq-definitions.json"
OPERATOR = "operator"
BROKER_ADDRESS = "rabbitmq:5672"  # the broker's service name on the compose network
SHARED_READABLE = 0o644  # see the module's docstring: the containers' users read their bind-mounted file


def operator_rights(lab: str) -> Permissions:
    """lab-run's listener: the simulator's rights (it declares the topology, binds server-named
    exclusive queues to the events exchange) plus reading the runs exchange; it publishes nothing."""
    base = permissions("analyzer_sim", lab=lab)
    return Permissions(base.configure, base.write, f"^({re.escape(topology.RUNS_EXCHANGE)}|{base.read[2:]}")


def _url(user: str, password: str, vhost: str) -> str:
    return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{BROKER_ADDRESS}/{quote(vhost, safe='')}"


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(SHARED_READABLE)


def make(folder: Path, *, lab: str, sut: str, admin_user: str, admin_password: str, vhost: str = "/") -> list[str]:
    """Write the URL files and the definitions into ``folder`` (made 0700); the accounts made."""
    if not admin_user or not admin_password:
        raise DefinitionsError("RABBITMQ_USER and RABBITMQ_PASSWORD must be set (deploy/.env)")
    if is_placeholder(admin_password):
        raise DefinitionsError(f"RABBITMQ_PASSWORD {PLACEHOLDER_HINT}")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    urls = {account: _url(f"mlpower-{lab}-{account}", new_secret(), vhost) for account in accounts(lab, [sut])}
    users, _ = service_users(lab, [sut], urls)
    operator = BrokerUser(f"mlpower-{lab}-{OPERATOR}", new_secret(), operator_rights(lab))
    admin = BrokerUser(admin_user, admin_password, EVERYTHING, administrator=True)
    if admin.name in {user.name for user in [*users, operator]}:
        raise DefinitionsError(f"the administrator {admin.name} cannot also be a service's user")
    for account, url in urls.items():
        _write(folder / f"{URL_FILE_PREFIX}{account}", url)
    _write(folder / f"{URL_FILE_PREFIX}{OPERATOR}", _url(operator.name, operator.password, vhost))
    path = folder / DEFINITIONS_FILE
    write_definitions(path, definitions([admin, *users, operator], vhost))
    path.chmod(SHARED_READABLE)
    return [*urls, OPERATOR]


def _variables(env_file: Path | None) -> Mapping[str, str]:
    found: dict[str, str] = {}
    if env_file is not None:
        for line in env_file.read_text(encoding="utf-8").splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                found[key.strip()] = value.strip()
    return {**found, **{k: v for k, v in os.environ.items() if v}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlpower.compose_secrets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", type=Path, help="compose variables (deploy/.env); the environment wins")
    parser.add_argument("--out", type=Path,
                        help="the secrets folder (default: MLPOWER_SECRETS_DIR, else deploy/secrets)")
    args = parser.parse_args(argv)
    variables = _variables(args.env_file)
    # compose's default, ./secrets beside deploy/compose.yaml, from the repository root
    out = args.out or Path(variables.get("MLPOWER_SECRETS_DIR") or "deploy/secrets")
    try:
        made = make(out, lab=variables.get("MLPOWER_LAB") or "lab", sut=variables.get("MLPOWER_SUT") or "sut1",
                    admin_user=variables.get("RABBITMQ_USER") or "mlpower",
                    admin_password=variables.get("RABBITMQ_PASSWORD", ""))
    except DefinitionsError as exc:
        parser.exit(2, f"compose secrets: {exc}\n")
    print(f"compose secrets: {out} ({len(made)} broker accounts and {DEFINITIONS_FILE})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
