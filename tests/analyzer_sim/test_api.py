"""The in-process API other services' tests rely on: start_simulator / start_ptd and their handles."""

from __future__ import annotations

import socket

import pytest
from mlpower.analyzer_sim import start_ptd, start_simulator
from mlpower.testing import wait_for


def _ask(port: int, line: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(line.encode() + b"\n")
        return sock.makefile("rb").readline().decode().strip()


def test_start_simulator_serves_idn_and_stops() -> None:
    with start_simulator(port=0, load="constant:250", seed=0, host="127.0.0.1", pty=False, control_port=None) as sim:
        assert isinstance(sim.port, int) and sim.port > 0
        assert sim.pty_path is None and sim.control_port is None
        assert _ask(sim.port, "*IDN?").startswith("YOKOGAWA,WT310E,")
        port = sim.port
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_set_load_changes_the_readings() -> None:
    sim = start_simulator(port=0, load="constant:250")
    try:
        sim.instrument.set_rate(0.1)
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
            f = sock.makefile("rb")
            sock.sendall(b":COMM:HEAD OFF;:INP:VOLT:AUTO OFF;:INP:CURR:AUTO OFF;:INP:CURR:RANG 10A\n")
            sock.sendall(b":STAT:FILT1 FALL;:STAT:EESR?\n")
            f.readline()
            sock.sendall(b":COMM:WAIT 1;:NUM:NORM:VAL? 3\n")
            before = float(f.readline())
            sim.set_load("constant:1500")

            def reading() -> float:
                sock.sendall(b":NUM:NORM:VAL? 3\n")
                return float(f.readline())

            # the next update (0.1 s) takes the new load; no fixed wait that a slow host overruns
            after = wait_for(lambda: (w := reading()) > 1000 and w, 5, what="a reading of the new load")
        assert 248 < before < 252
        assert 1490 < after < 1510
        assert sim.model.spec == "constant:1500"
    finally:
        sim.stop()


def test_start_ptd_answers_hello() -> None:
    with start_ptd(port=0, log_path=None, seed=0, load="constant:250", analyzer_port=None) as ptd:
        with socket.create_connection(("127.0.0.1", ptd.port), timeout=5) as sock:
            sock.sendall(b"Hello\r\n")
            assert sock.makefile("rb").readline() == b"Hello, PTDaemon here!\r\n"


def test_a_simulator_that_cannot_start_releases_its_port() -> None:
    from mlpower.analyzer_sim.settings import Settings
    from mlpower.errors import MlpowerError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    broken = Settings(amqp_url="amqp://guest:guest@127.0.0.1:1/")  # nothing listens on port 1
    with pytest.raises(MlpowerError):
        start_simulator(port=port, load="follow", settings=broken)
    with start_simulator(port=port) as sim:  # the port is free again
        assert sim.port == port
