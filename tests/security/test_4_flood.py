"""The idle-connection flood, bounded and on loopback: sockets that connect and say nothing (more
than any listener's connection limit) hold no service for long."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from mlpower.http_serve import HEADER_TIMEOUT_S, LIMIT_CONCURRENCY

from tests.director.powerdev_client import ProtocolClient
from tests.reliability.procs import wait_until
from tests.security.lab import HTTP_SERVICES, Lab
from tests.security.ledger import LEDGER

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

IDLE_PER_PORT = 50
IDLE_PER_HTTP_PORT = LIMIT_CONCURRENCY + 6  # beyond the limit: new requests get 503 until the idle ones go
RECOVERY_S = HEADER_TIMEOUT_S * 3


def _open(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        try:
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=1))
        except OSError:
            break  # a listener that closes at once is fine: the flood is bounded either way
    return sockets


@pytest.fixture
def flood(lab: Lab) -> Iterator[dict[str, list[socket.socket]]]:
    opened = {name: _open(port, IDLE_PER_HTTP_PORT if name in HTTP_SERVICES else IDLE_PER_PORT)
              for name, port in lab.ports.items()}
    try:
        yield opened
    finally:
        for sockets in opened.values():
            for sock in sockets:
                sock.close()


def _healthy(lab: Lab, service: str) -> bool:
    try:
        return lab.http("GET", service, "/healthz").status_code == 200
    except OSError:
        return False


def _scpi_answers(lab: Lab) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", lab.ports["scpi"]), timeout=2) as sock:
            sock.sendall(b"*IDN?\n")
            return sock.recv(100).startswith(b"YOKOGAWA")
    except OSError:
        return False


def test_idle_connections_hold_no_http_service_or_the_meter(lab: Lab, flood: dict[str, Any],
                                                             measured: dict[str, Any]) -> None:
    started = time.monotonic()
    for service in HTTP_SERVICES:
        served = True
        try:
            wait_until(lambda service=service: _healthy(lab, service), RECOVERY_S, f"{service} to answer")
        except AssertionError:
            served = False
        LEDGER.attempt("idle flood", f"{len(flood[service])} idle connections to {service}", served)
        assert served, f"{service} did not answer within {RECOVERY_S:g} s of the flood"
    served = True
    try:
        wait_until(lambda: _scpi_answers(lab), RECOVERY_S, "the simulated meter to answer")
    except AssertionError:
        served = False
    LEDGER.attempt("idle flood", f"{len(flood['scpi'])} idle connections to the SCPI port", served)
    assert served
    assert time.monotonic() - started < RECOVERY_S * 3


def _powerdev_session_completes(lab: Lab, timeout_s: float) -> bool:
    try:
        client = ProtocolClient("127.0.0.1", lab.ports["power-dev"], timeout_s=timeout_s)
    except OSError:
        return False
    try:
        if client.command("mlcommons/power client v3") != "mlcommons/power server v3":
            return False
        reply = client.command(f"new,flood,{uuid.uuid4()}") or ""
        if not reply.startswith("OK "):
            return False
        sid = reply[3:].split(",")[0]
        for command in ("start,ranging", "stop,ranging", "start,testing", "stop,testing", "done"):
            if client.command(f"session,{sid},{command}") != "OK":
                return False
        return True
    except OSError:
        return False
    finally:
        client.close()


def test_a_power_dev_session_completes_while_idle_connections_sit(lab: Lab, measured: dict[str, Any]) -> None:
    idle = _open(lab.ports["power-dev"], IDLE_PER_PORT)
    try:  # a server that answers "busy" at once may take a few tries, until it let the silent ones go
        wait_until(lambda: _powerdev_session_completes(lab, timeout_s=10), 40, "a power-dev session", every_s=1)
    finally:
        for sock in idle:
            sock.close()


def test_power_dev_closes_a_connection_that_never_says_hello(lab: Lab, measured: dict[str, Any]) -> None:
    with socket.create_connection(("127.0.0.1", lab.ports["power-dev"])) as idle:
        idle.settimeout(60)
        try:
            assert idle.recv(100) == b""  # closed by the server (a handshake timeout), not by us
        except TimeoutError:
            pytest.fail("power-dev kept a silent connection for 60 s")
