"""The lab's own secrets: an API token and a broker account, never a placeholder, kept under the
lab folder with mode 0600.

``mlpower lab up`` takes the token from ``MLPOWER_API_TOKEN`` (or ``--env-file``) when one is set,
else reuses the one it stored before, else makes a new random one; the same for the broker
password (``RABBITMQ_PASSWORD``). A placeholder (``change-me...``) is refused, never used. The
example file's values are never read: ``deploy/.env.example`` carries none worth keeping.

The broker account: by default (``MLPOWER_LAB_BROKER_ACCOUNT=create``) the lab gets its own
RabbitMQ user, ``mlpower-<lab>-<digest>`` (``broker_user``), with that password and rights on the
``mlpower.*`` exchanges and queues of ``AMQP_URL``'s virtual host only, made with ``rabbitmqctl``
(which manages a broker on this machine; the password goes through its standard input, never its command line). The
services then log in as that user, reading the URL from a 0600 file (``AMQP_URL_FILE``), so the
administrator account of ``AMQP_URL`` reaches none of them. ``lab down`` deletes the user. With
``MLPOWER_LAB_BROKER_ACCOUNT=given`` the services use ``AMQP_URL``'s own account instead (a
remote broker, or one you manage yourself).

Each service then gets a user of its own besides (``<lab user>-<account>``, the accounts of
``mlpower.broker_permissions``: its director and agent of the lab's SUT, analytics, figures, the
simulator), with a fresh random password at each ``lab up`` and only the table's rights, its URL
in its own 0600 file (``amqp_url_<account>``); the lab's user stays the operator's (``lab run``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from mlpower.broker_permissions import Permissions, accounts
from mlpower.lab.errors import LabError
from mlpower.listen import url_host
from mlpower.secrets import is_placeholder, new_secret

SECRETS_DIR = "secrets"
TOKEN_FILE = "mlpower_api_token"  # the compose secret's name: the services read it as MLPOWER_API_TOKEN_FILE
BROKER_PASSWORD_FILE = "broker_password"
AMQP_URL_FILE = "amqp_url"
BROKER_STATE_FILE = "broker.json"
# What the lab's services declare and use on the broker: mlpower.* exchanges and queues, and the
# server-named queues of live listeners.
BROKER_PERMISSION = r"^(mlpower\..*|amq\.gen-.*)$"
LOOPBACK_HOSTS = ("localhost", "::1")


@dataclass(frozen=True)
class LabCredentials:
    api_token: str
    broker_user: str
    broker_password: str
    amqp_url: str  # what the services log in with
    folder: Path
    created_user: bool  # lab up made broker_user (lab down deletes it)
    service_accounts: tuple[str, ...] = ()  # the services' own users lab up made, by account

    @property
    def token_path(self) -> Path:
        return self.folder / TOKEN_FILE

    @property
    def amqp_url_path(self) -> Path:
        return self.folder / AMQP_URL_FILE

    @property
    def password_path(self) -> Path:
        return self.folder / BROKER_PASSWORD_FILE

    def service_url_path(self, account: str) -> Path:
        """A service's own broker URL file; the lab's URL where it has none (the given account)."""
        own = self.folder / f"{AMQP_URL_FILE}_{account}"
        return own if account in self.service_accounts else self.amqp_url_path


def secrets_folder(workdir: Path) -> Path:
    return workdir / SECRETS_DIR


def write_secret(path: Path, value: str) -> None:
    """Write a secret readable by this user only (created 0600, never world-readable for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    path.chmod(0o600)


def read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise LabError(f"cannot read the lab secret {path}: {exc.strerror}") from exc


def _chosen(name: str, given: Mapping[str, str], stored: Path) -> str:
    """The secret the user set, else the stored one, else a new one; a placeholder is refused."""
    value = given.get(name, "").strip()
    if value:
        if is_placeholder(value):
            raise LabError(f"{name} is a placeholder (like change-me...): unset it and 'mlpower lab up' makes a "
                           f"random one, or set a real secret")
        return value
    return read_secret(stored) or new_secret()


def broker_user(lab: str, admin_url: str, workdir: Path) -> str:
    """``mlpower-<lab>-<8 hex>``: the lab's name for people, and a digest of the virtual host and the
    lab folder, because broker users are broker-wide. Two labs of one name (each engineer's default
    ``lab``, in their own vhost or checkout) would otherwise share one user: the second ``lab up``
    would change the first's password and either ``lab down`` would delete the other's account
    (and with it, close its services' connections)."""
    digest = hashlib.sha256(f"{_vhost(admin_url)}\0{workdir.resolve()}".encode()).hexdigest()[:8]
    return f"mlpower-{lab}-{digest}"


def _is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def _vhost(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def _with_account(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = url_host(parts.hostname or "")
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _rabbitmqctl(command: list[str], args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([*command, *args], input=stdin, capture_output=True, text=True, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"cannot run {shlex.join(command)} to make the lab's broker user ({exc}); set "
                       "MLPOWER_LAB_RABBITMQCTL (e.g. 'sudo rabbitmqctl'), or MLPOWER_LAB_BROKER_ACCOUNT=given "
                       "to use AMQP_URL's own account") from exc


def _ctl_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {result.returncode}"


def create_broker_user(command: list[str], admin_url: str, user: str, password: str,
                       rights: Permissions | None = None) -> None:
    """A RabbitMQ user with ``password`` (made, or its password set) and ``rights`` on the vhost (by
    default the lab user's: every mlpower.* name)."""
    host = urlsplit(admin_url).hostname or ""
    if not _is_loopback(host):
        raise LabError(f"the broker at {host} is not on this machine: rabbitmqctl cannot make the lab's user there; "
                       "set MLPOWER_LAB_BROKER_ACCOUNT=given to use AMQP_URL's own account")
    made = _rabbitmqctl(command, ["-q", "add_user", user], stdin=password)
    if made.returncode != 0:
        if "already exists" not in (made.stderr + made.stdout):
            raise LabError(f"rabbitmqctl add_user {user}: {_ctl_error(made)}")
        changed = _rabbitmqctl(command, ["-q", "change_password", user], stdin=password)
        if changed.returncode != 0:
            raise LabError(f"rabbitmqctl change_password {user}: {_ctl_error(changed)}")
    vhost = _vhost(admin_url)
    rights = rights or Permissions(BROKER_PERMISSION, BROKER_PERMISSION, BROKER_PERMISSION)
    granted = _rabbitmqctl(command, ["-q", "set_permissions", "-p", vhost, user, rights.configure, rights.write,
                                     rights.read])
    if granted.returncode != 0:
        raise LabError(f"rabbitmqctl set_permissions -p {vhost} {user}: {_ctl_error(granted)}")


def delete_broker_user(command: list[str], user: str) -> None:
    done = _rabbitmqctl(command, ["-q", "delete_user", user])
    if done.returncode != 0 and "does not exist" not in (done.stderr + done.stdout):
        raise LabError(f"rabbitmqctl delete_user {user}: {_ctl_error(done)}")


def ensure(workdir: Path, *, lab: str, admin_url: str, account: str, rabbitmqctl: str,
           given: Mapping[str, str], sut: str = "sut1") -> LabCredentials:
    """The lab's token and broker accounts, stored under ``workdir/secrets`` (0700, files 0600)."""
    folder = secrets_folder(workdir)
    token = _chosen("MLPOWER_API_TOKEN", given, folder / TOKEN_FILE)
    made: tuple[str, ...] = ()
    if account == "given":
        parts = urlsplit(admin_url)
        user, password, url, created = unquote(parts.username or ""), unquote(parts.password or ""), admin_url, False
    else:
        command = shlex.split(rabbitmqctl)
        user = broker_user(lab, admin_url, workdir)
        password = _chosen("RABBITMQ_PASSWORD", given, folder / BROKER_PASSWORD_FILE)
        users = [user]
        state = workdir / BROKER_STATE_FILE
        try:
            create_broker_user(command, admin_url, user, password)
            for name, rights in accounts(lab, [sut]).items():
                own_user, own_password = f"{user}-{name}", new_secret()
                users.append(own_user)
                create_broker_user(command, admin_url, own_user, own_password, rights)
                write_secret(folder / f"{AMQP_URL_FILE}_{name}", _with_account(admin_url, own_user, own_password))
        finally:  # whatever was made, lab down (or the failed lab up) deletes
            state.write_text(json.dumps({"user": user, "users": users, "rabbitmqctl": rabbitmqctl}), encoding="utf-8")
        url, created, made = _with_account(admin_url, user, password), True, tuple(accounts(lab, [sut]))
        write_secret(folder / BROKER_PASSWORD_FILE, password)
    write_secret(folder / TOKEN_FILE, token)
    write_secret(folder / AMQP_URL_FILE, url)
    return LabCredentials(token, user, password, url, folder, created, made)


def forget_broker_user(workdir: Path) -> str | None:
    """Delete the broker user ``lab up`` made (``lab down``); its name, or None when it made none."""
    state = workdir / BROKER_STATE_FILE
    if not state.is_file():
        return None
    recorded = json.loads(state.read_text(encoding="utf-8"))
    for user in reversed(recorded.get("users") or [recorded["user"]]):
        delete_broker_user(shlex.split(recorded["rabbitmqctl"]), user)
    state.unlink()
    return str(recorded["user"])
