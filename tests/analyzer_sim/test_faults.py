"""Every fault, switched on and off through the control API, with the symptom wt310e.md 3.2 describes."""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import serial
from mlpower.analyzer_sim import VirtualClock, start_ptd, start_simulator
from mlpower.analyzer_sim.clock import RealClock
from mlpower.analyzer_sim.simulator import SimulatorHandle
from mlpower.ptdformat import parse_ptd_time
from mlpower.testing import wait_for


class Scpi:
    def __init__(self, port: int, timeout_s: float = 3.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.file = self.sock.makefile("rb")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def ask(self, line: str) -> str:
        self.send(line)
        raw = self.file.readline()
        if not raw:
            raise ConnectionError("closed by the simulator")
        return raw.decode().strip()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    with start_simulator(port=0, load="constant:250", control_port=0, pty=True, clock=VirtualClock()) as handle:
        yield handle


def _fault(sim: SimulatorHandle, name: str, **body: object) -> dict:
    reply = httpx.post(f"http://127.0.0.1:{sim.control_port}/faults/{name}", json=body, timeout=5)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _injected(sim: SimulatorHandle, fault: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{sim.control_port}/metrics", timeout=5).text
    m = re.search(rf'^mlpower_sim_faults_injected_total{{fault="{fault}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_drop_connection_closes_and_refuses_until_switched_off(sim: SimulatorHandle) -> None:
    client = Scpi(sim.port)
    assert client.ask("*IDN?").startswith("YOKOGAWA")
    _fault(sim, "drop_connection", on=True)
    with pytest.raises((ConnectionError, OSError)):
        client.ask("*IDN?")
    client.close()
    fresh = Scpi(sim.port)
    with pytest.raises((ConnectionError, OSError)):
        fresh.ask("*IDN?")  # accepted, then closed at once
    fresh.close()
    assert _injected(sim, "drop_connection") == 1
    _fault(sim, "drop_connection", on=False)
    again = Scpi(sim.port)
    assert again.ask("*IDN?").startswith("YOKOGAWA")
    again.close()


def test_stall_makes_the_client_time_out_until_switched_off(sim: SimulatorHandle) -> None:
    _fault(sim, "stall", on=True, seconds=2.0)
    client = Scpi(sim.port, timeout_s=0.5)
    with pytest.raises(TimeoutError):
        client.ask("*IDN?")
    client.close()
    _fault(sim, "stall", on=False)
    client = Scpi(sim.port, timeout_s=5)
    start = time.monotonic()
    assert client.ask("*IDN?").startswith("YOKOGAWA") and time.monotonic() - start < 1.0
    client.close()


@pytest.mark.parametrize(("kind", "token"), [("nan", "NAN"), ("overrange", "INF")])
def test_burst_of_bad_updates_then_normal_again(sim: SimulatorHandle, kind: str, token: str) -> None:
    client = Scpi(sim.port)
    client.send(":COMM:HEAD OFF;:NUM:NORM:NUM 3;:NUM:NORM:ITEM1 U;ITEM2 I;ITEM3 P;:STAT:FILT1 FALL")

    def next_update() -> list[str]:
        client.ask(":STAT:EESR?")
        client.send(":COMM:WAIT 1")
        return client.ask(":NUM:NORM:VAL?").split(",")

    assert all(v not in ("NAN", "INF") for v in next_update())
    _fault(sim, "burst", on=True, kind=kind, updates=3)
    bad = [next_update() for _ in range(3)]
    assert all(values[2] == token for values in bad)  # P of every update in the burst
    assert all(v not in ("NAN", "INF") for v in next_update())  # over by itself after 3 updates
    _fault(sim, "burst", on=True, kind=kind, updates=100)
    assert next_update()[2] == token
    _fault(sim, "burst", on=False)
    assert next_update()[2] not in ("NAN", "INF")
    client.close()


def test_error_queue_entries_while_on(sim: SimulatorHandle) -> None:
    client = Scpi(sim.port)
    client.send(":COMM:HEAD OFF")
    _fault(sim, "error_queue", on=True, code=390)
    assert client.ask(":STAT:ERR?") == '390,"Overrun (RS-232)"'
    assert client.ask(":STAT:ERR?") == '390,"Overrun (RS-232)"'  # every command adds one
    assert _injected(sim, "error_queue") == 1
    _fault(sim, "error_queue", on=False)
    client.send("*CLS")
    assert client.ask(":STAT:ERR?") == '0,"No error"'
    client.close()


def test_usb_disappearance_and_return_with_power_on_settings(sim: SimulatorHandle) -> None:
    client = Scpi(sim.port)
    client.send(":COMM:HEAD OFF;:INP:VOLT:RANG 600V")
    assert client.ask(":INP:VOLT:RANG?") == "600.0E+00"
    assert sim.pty_path and os.path.exists(sim.pty_path)
    rs232 = serial.Serial(sim.pty_path, timeout=0.5)
    rs232.write(b"*IDN?\n")
    assert rs232.readline().startswith(b"YOKOGAWA")
    _fault(sim, "disconnect", on=True)
    with pytest.raises((ConnectionError, OSError)):
        client.ask("*IDN?")
    client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sim.port), timeout=2)
    def serial_fails() -> bool:  # the serial side sees I/O errors, as on an unplugged adapter
        try:
            rs232.write(b"*IDN?\n")
            rs232.readline()
        except serial.SerialException:
            return True
        return False

    wait_for(serial_fails, 5, what="an I/O error on the serial side", poll_s=0.05)
    rs232.close()
    _fault(sim, "disconnect", on=False)
    back = Scpi(sim.port)
    assert back.ask(":INP:VOLT:RANG?") == ":INP:VOLT:RANG 300.0E+00"  # power-on defaults: header ON, 300 V
    back.close()
    assert sim.pty_path and os.path.exists(sim.pty_path)
    assert _injected(sim, "disconnect") == 1


def test_clock_drift_moves_ptd_timestamps_and_back(tmp_path) -> None:
    log = tmp_path / "ptd.log"

    def offsets() -> list[float]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [parse_ptd_time(line.split(",")[1]) - time.time() for line in lines]

    # waits on the samples themselves, not on a pace: a loaded host may delay the 1 s sampler
    with start_ptd(port=0, log_path=log) as ptd:
        ptd.faults.clock_drift(0.0, offset_s=3600.0)
        wait_for(lambda: any(3500 < o < 3700 for o in offsets()), what="a sample an hour ahead while drifting")
        ptd.faults.clock_drift(0.0, 0.0)
        wait_for(lambda: -30 < offsets()[-1] < 5, what="a sample back on time once switched off")


def test_real_clock_drift_grows_with_time() -> None:
    clock = RealClock()
    started = time.time()
    clock.set_error(drift_ppm=200_000)  # 20 % fast
    error_s = wait_for(lambda: (e := clock.error_s()) >= 0.05 and e, 10, what="an error of 50 ms")
    # the error grows with the time that passed, however long a loaded host took: never faster than 20 %
    assert error_s <= 0.2 * (time.time() - started) + 1e-3
    clock.set_error()
    assert abs(clock.error_s()) < 0.01


def test_faults_from_settings_are_on_at_start() -> None:
    from mlpower.analyzer_sim.settings import Settings

    settings = Settings(error_code=350)
    with start_simulator(port=0, settings=settings, clock=VirtualClock()) as handle:
        client = Scpi(handle.port)
        assert client.ask(":STAT:ERR?").endswith('350,"Queue overflow"')
        client.close()
        handle.faults.clear()
        assert handle.faults.snapshot().error_code == 0
