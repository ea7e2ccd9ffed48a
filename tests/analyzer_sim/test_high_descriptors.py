"""The simulator's servers keep working when their sockets get descriptor numbers >= 1024
(FD_SETSIZE): a long test session or a busy lab process reaches them, and select() then refused
the socket, so the PTD emulator dropped its client ("PTDaemon closed the connection") or never
answered, and the SCPI server did the same."""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Iterator

import pytest
from mlpower.analyzer_sim.simulator import start_ptd, start_simulator

FD_SETSIZE = 1024


@pytest.fixture
def high_descriptors() -> Iterator[None]:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < FD_SETSIZE + 64:
        pytest.skip(f"RLIMIT_NOFILE {soft} is too low to reach descriptor {FD_SETSIZE}")
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(FD_SETSIZE + 16)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)


def ask(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        assert conn.fileno() >= FD_SETSIZE
        conn.sendall(line)
        return conn.makefile("rb").readline()


def test_ptd_emulator_serves_high_descriptors(high_descriptors: None) -> None:
    with start_ptd(port=0) as ptd:
        assert ptd.server._listener.fileno() >= FD_SETSIZE
        assert ask(ptd.port, b"Hello\r\n") == b"Hello, PTDaemon here!\r\n"
        assert ask(ptd.port, b"RR\r\n").startswith(b"Ranges,")  # the accept loop lives on


def test_scpi_server_serves_high_descriptors(high_descriptors: None) -> None:
    with start_simulator(port=0, load="constant:100") as sim:
        assert ask(sim.port, b"*IDN?\n").startswith(b"YOKOGAWA")
