"""Connection limits of the emulators: silent or surplus clients cannot lock the director out.

SCPI serves ``MLPOWER_SIM_MAX_CONNECTIONS`` clients and closes more at once; a client must send its
first command within the handshake timeout and is closed after the idle timeout. The PTD emulator
serves one client, tells a second one at once that it is busy, closes a silent first connection
after the handshake timeout and a silent client outside a measurement after the idle timeout.
Client text reaches its console only escaped.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from mlpower.analyzer_sim import VirtualClock, start_ptd, start_simulator
from mlpower.analyzer_sim.ptd import BUSY_REPLY, MAX_LINE_BYTES
from mlpower.analyzer_sim.settings import Settings
from mlpower.settings import load_settings
from mlpower.testing import wait_for

SHORT_S = 0.5


def _settings(**changes: object) -> Settings:
    return load_settings(Settings, handshake_timeout_s=SHORT_S, idle_timeout_s=SHORT_S * 2, **changes)


def _closed_within(sock: socket.socket, timeout_s: float) -> bool:
    sock.settimeout(timeout_s)
    try:
        while sock.recv(1000):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def _query(sock: socket.socket, line: bytes) -> bytes:
    sock.settimeout(5)
    sock.sendall(line)
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(1000)
        assert chunk, "closed instead of answering"
        reply += chunk
    return reply


def _answer(port: int, line: bytes) -> bytes:
    """A new connection's reply to ``line``; empty when it was closed instead (a slot not free yet)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        try:
            return _query(sock, line)
        except (AssertionError, OSError):
            return b""


@pytest.fixture
def scpi() -> Iterator[int]:
    with start_simulator(port=0, clock=VirtualClock(), settings=_settings(max_connections=2)) as sim:
        yield sim.port


def test_scpi_closes_connections_over_the_limit_at_once(scpi: int) -> None:
    first, second = (socket.create_connection(("127.0.0.1", scpi)) for _ in range(2))
    try:
        assert _query(first, b"*IDN?\n").startswith(b"YOKOGAWA")
        assert _query(second, b"*IDN?\n").startswith(b"YOKOGAWA")
        with socket.create_connection(("127.0.0.1", scpi)) as third:
            assert _closed_within(third, 5)
        first.close()  # the server notices the close on its next poll: a new client is served after that
        wait_for(lambda: _answer(scpi, b"*IDN?\n").startswith(b"YOKOGAWA"), 10, what="the freed slot", poll_s=0.05)
    finally:
        first.close()
        second.close()


def test_scpi_silent_connections_are_closed_and_free_their_slot(scpi: int) -> None:
    silent = [socket.create_connection(("127.0.0.1", scpi)) for _ in range(2)]
    try:
        assert all(_closed_within(sock, SHORT_S * 10) for sock in silent)
        with socket.create_connection(("127.0.0.1", scpi)) as client:
            assert _query(client, b"*IDN?\n").startswith(b"YOKOGAWA")
            time.sleep(SHORT_S * 1.2)  # a duration under test: past the handshake timeout, within the idle one
            assert _query(client, b"*IDN?\n").startswith(b"YOKOGAWA")
            assert _closed_within(client, SHORT_S * 10)  # then silent past the idle timeout
    finally:
        for sock in silent:
            sock.close()


@pytest.fixture
def ptd() -> Iterator[object]:
    with start_ptd(port=0, settings=_settings(), clock=VirtualClock()) as handle:
        yield handle


def test_ptd_tells_a_second_client_it_is_busy_and_serves_it_after_the_first(ptd) -> None:
    with socket.create_connection(("127.0.0.1", ptd.port)) as first:
        assert _query(first, b"Hello\r\n").startswith(b"Hello, PTDaemon here!")
        with socket.create_connection(("127.0.0.1", ptd.port)) as second:
            second.settimeout(5)
            assert second.recv(100).decode().strip() == BUSY_REPLY
            assert _closed_within(second, 5)
    # served once the first session's thread has ended
    reply = wait_for(lambda: (r := _answer(ptd.port, b"Hello\r\n")).startswith(b"Hello") and r, 10,
                     what="the PTD to serve the next client", poll_s=0.1)
    assert reply.startswith(b"Hello, PTDaemon here!")


def test_ptd_lets_a_silent_client_go_but_not_during_a_measurement(ptd) -> None:
    with socket.create_connection(("127.0.0.1", ptd.port)) as silent:
        assert _closed_within(silent, SHORT_S * 10)
    assert any("Closing the connection: no command within" in line for line in ptd.console_lines)
    with socket.create_connection(("127.0.0.1", ptd.port)) as client:
        assert _query(client, b"Go,1000,0,mark_ranging\r\n").startswith(b"Starting untimed measurement")
        assert not _closed_within(client, SHORT_S * 4)  # measuring: the director may wait the whole phase
        assert _query(client, b"Stop\r\n").startswith(b"Stopping")
        assert _closed_within(client, SHORT_S * 10)  # silent again outside the measurement


def test_ptd_refuses_control_characters_long_lines_and_long_marks_and_escapes_its_console(ptd) -> None:
    with socket.create_connection(("127.0.0.1", ptd.port)) as client:
        assert _query(client, b"Go,1000,0,\x1b[31mred\r\n").startswith(b"Error: command has non-printable")
        assert _query(client, b"\x1b]0;title\x07Hello\r\n").startswith(b"Error: command has non-printable")
        assert _query(client, b"Go,1000,0," + b"m" * 300 + b"\r\n").startswith(b"Error: mark longer than")
        assert _query(client, b"X" * (MAX_LINE_BYTES + 10)).startswith(b"Error: command longer than")
        assert _query(client, b"Hello\r\n").startswith(b"Hello, PTDaemon here!")  # still served
        assert _query(client, b"Bogus" + b"z" * 1000 + b"\r\n").startswith(b"Unknown command: Bogus")
    console = "\n".join(ptd.console_lines)
    assert "\x1b" not in console and "\x07" not in console
    assert "\\x1b[31mred" in console
    assert "z" * 100 not in console
