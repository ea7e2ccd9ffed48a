"""What the lab exposes after ``mlpower lab up``: loopback sockets only, real secrets kept 0600,
no placeholder accepted anywhere, a broker account that reaches the lab's own names only."""

from __future__ import annotations

import ipaddress
import os
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions
import pytest
from mlpower.secrets import is_placeholder
from mlpower.settings import PROJECT_ROOT

from tests.security.lab import Lab
from tests.security.ledger import LEDGER

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]


def _address(hex_address: str) -> str:
    """/proc/net/tcp's ``0100007F`` (IPv4) or 32 hex digits (IPv6), each 32-bit word in host order."""
    raw = bytes.fromhex(hex_address)
    host_order = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(host_order))


def listening_sockets(pids: list[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every TCP socket in LISTEN state held by one of ``pids``."""
    owner: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    owner[target[8:-1]] = pid
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            address, port = fields[1].split(":")
            if fields[9] in owner:
                found.append((_address(address), int(port, 16), owner[fields[9]]))
    return found


def test_no_lab_socket_listens_beyond_loopback(lab: Lab) -> None:
    sockets = listening_sockets(lab.pids())
    ports = {port for _, port, _ in sockets}
    assert set(lab.ports.values()) <= ports, f"expected the lab's ports, found {sorted(ports)}"
    for address, port, pid in sockets:
        refused = ipaddress.ip_address(address).is_loopback
        LEDGER.attempt("socket scan", f"{address}:{port} (pid {pid})", refused)
        assert refused, f"pid {pid} listens on {address}:{port}, beyond loopback"


def test_secrets_are_real_random_and_readable_by_their_owner_only(lab: Lab) -> None:
    assert stat.S_IMODE(lab.workdir.stat().st_mode) == 0o700
    assert stat.S_IMODE(lab.secrets.stat().st_mode) == 0o700
    for name in ("mlpower_api_token", "broker_password", "amqp_url"):
        assert stat.S_IMODE((lab.secrets / name).stat().st_mode) == 0o600, name
    for secret in (lab.token, lab.broker_password):
        assert len(secret) >= 40 and not is_placeholder(secret)
    assert lab.token != lab.broker_password
    assert (lab.workdir / ".gitignore").read_text().strip().endswith("*")
    assert ".lab/" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert f"mlpower-{lab.lab}-" in lab.amqp_url and "guest" not in lab.amqp_url


@pytest.mark.parametrize("variable, value", [
    ("MLPOWER_API_TOKEN", "change-me-api-token"), ("MLPOWER_API_TOKEN", "<token>"),
    ("AMQP_URL", "amqp://mlpower:change-me-broker-password@127.0.0.1:5672/"),
])
@pytest.mark.parametrize("command", [["analytics"], ["sim", "--port", "0", "--control-port", "0"],
                                     ["agent", "--bus"], ["figures", "serve", "--port", "0"],
                                     ["director", "--analyzer", "fake://1"], ["lab", "up"]])
def test_nothing_starts_with_a_placeholder_secret(lab: Lab, command: list[str], variable: str, value: str) -> None:
    env = {**lab.env, variable: value, "MLPOWER_LAB_DIR": str(lab.root / "other-lab")}
    done = subprocess.run([sys.executable, "-m", "mlpower", *command], env=env, capture_output=True, text=True,
                          timeout=60, cwd=lab.root)
    lines = done.stderr.strip().splitlines()
    refused = done.returncode == 2 and len(lines) == 1 and variable in lines[0] and "placeholder" in lines[0]
    LEDGER.attempt("placeholder secret", f"{' '.join(command)} with {variable}", refused)
    assert refused, (done.returncode, done.stderr[-1500:])
    assert value not in done.stderr


def test_the_lab_broker_account_reaches_only_the_lab_names(lab: Lab) -> None:
    parameters = pika.URLParameters(lab.amqp_url)
    for exchange in ("evil", "amq.topic-evil", "audit.log"):
        connection = pika.BlockingConnection(parameters)
        try:
            channel = connection.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
                channel.exchange_declare(exchange=exchange, exchange_type="topic")
            refused = closed.value.reply_code == 403
            LEDGER.attempt("bus", f"declare exchange {exchange} with the lab's account", refused)
            assert refused
        finally:
            if connection.is_open:
                connection.close()
    parts = urlsplit(lab.amqp_url)
    if parts.path not in ("", "/", "/%2F"):  # the test broker's vhost is not the default one: try that one
        other = pika.URLParameters(urlunsplit(parts._replace(path="/%2F")))
        try:
            pika.BlockingConnection(other).close()
            reached = True
        except (pika.exceptions.ProbableAccessDeniedError, pika.exceptions.ConnectionClosedByBroker):
            reached = False
        LEDGER.attempt("bus", "the lab's account on another virtual host", not reached)
        assert not reached
