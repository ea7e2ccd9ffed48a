"""The reference transcript of wt310e.md 3.1, replayed through pyvisa (pyvisa-py, TCP SOCKET) and
through pyserial over the pty: both transports must see identical replies, in the doc's formats."""

from __future__ import annotations

import re
from collections.abc import Callable

import pyvisa
import serial
from mlpower.analyzer_sim import VirtualClock, start_simulator
from mlpower.analyzer_sim.instrument import PhysicsOptions
from mlpower.analyzer_sim.physics import Mains

NO_REPLY = "<no reply>"

# (command, expects a reply). Lines as in the doc; the illustrative numbers are the simulator's own.
TRANSCRIPT: tuple[tuple[str, bool], ...] = (
    ("*CLS", False),
    ("*IDN?", True),
    (":COMMUNICATE:REMOTE ON", False),
    (":COMMUNICATE:HEADER OFF", False),
    (":COMMUNICATE:VERBOSE ON", False),
    (":STATUS:QMESSAGE ON", False),
    (":STATUS:ERROR?", True),
    (":INPUT:MODE RMS", False),
    (":INPUT:CFACTOR 3", False),
    (":INPUT:VOLTAGE:AUTO OFF", False),
    (":INPUT:VOLTAGE:RANGE 300V", False),
    (":INPUT:CURRENT:AUTO OFF", False),
    (":INPUT:CURRENT:RANGE 0.5A", False),
    (":INPUT:VOLTAGE:RANGE?;AUTO?;:INPUT:CURRENT:RANGE?;AUTO?", True),
    (":RATE 1S", False),
    (":RATE?", True),
    (":NUMERIC:FORMAT ASCII", False),
    (":NUMERIC:NORMAL:NUMBER 4", False),
    (":NUMERIC:NORMAL:ITEM1 P,1;ITEM2 U,1;ITEM3 I,1;ITEM4 LAMBDA,1", False),
    (":NUMERIC:NORMAL:ITEM4?", True),
    (":STATUS:FILTER1 FALL", False),
    (":STATUS:EESR?", True),
    (":COMMUNICATE:WAIT 1", False),
    (":NUMERIC:NORMAL:VALUE?", True),
    (":STATUS:EESR?", True),
    (":COMMUNICATE:WAIT 1", False),
    (":NUMERIC:NORMAL:VALUE?", True),
    (":NUMERIC:NORMAL:VALUE? 1", True),
    (":INPUT:CURRENT:AUTO ON", False),
    (":INPUT:VOLTAGE:AUTO ON", False),
    (":COMMUNICATE:WAIT 1", False),
    (":NUMERIC:NORMAL:VALUE?", True),
    (":INPUT:CURRENT:RANGE?", True),
    (":INPUT:CURRENT:RANGE 7A", False),
    (":STATUS:ERROR?", True),
    (":FOO:BAR?", False),  # a bad query: no reply, the client's read times out
    (":STATUS:ERROR?", True),
    (":STATUS:ERROR?", True),
    (":INTEGRATE:MODE NORMAL", False),
    (":INTEGRATE:TIMER 0,10,0", False),
    (":INTEGRATE:START", False),
    (":INTEGRATE:STATE?", True),
    (":INTEGRATE:RESET", False),
    (":STATUS:ERROR?", True),
    (":COMMUNICATE:REMOTE OFF", False),
)

VALUES = re.compile(r"^[-\d.]+E[+-]\d\d,[-\d.]+E[+-]\d\d,[-\d.]+E[+-]\d\d,[-\d.]+E[+-]\d\d$")


def _simulator(pty: bool):  # the doc's edge box: about 24 W at PF 0.49 on 300 V / 0.5 A
    options = PhysicsOptions(mains=Mains(voltage_v=247.9, power_factor=0.4855, current_crest_factor=2.5))
    return start_simulator(port=0, load="constant:23.85", seed=7, pty=pty, clock=VirtualClock(), options=options)


def _replay(ask: Callable[[str], str], write: Callable[[str], None]) -> list[str]:
    replies = []
    for line, expects_reply in TRANSCRIPT:
        if line == ":FOO:BAR?":
            replies.append(ask(line))
        elif expects_reply:
            replies.append(ask(line))
        else:
            write(line)
    return replies


def _via_pyvisa() -> list[str]:
    with _simulator(pty=False) as sim:
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", read_termination="\n",
                                write_termination="\n", timeout=400)
        try:
            def ask(line: str) -> str:
                inst.write(line)
                try:
                    return inst.read()
                except pyvisa.errors.VisaIOError:
                    return NO_REPLY

            return _replay(ask, inst.write)
        finally:
            inst.close()
            rm.close()


def _via_pyserial() -> list[str]:
    with _simulator(pty=True) as sim:
        assert sim.pty_path is not None
        port = serial.Serial(sim.pty_path, baudrate=9600, bytesize=8, parity="N", stopbits=1, timeout=0.4)
        try:
            def write(line: str) -> None:
                port.write(line.encode() + b"\n")

            def ask(line: str) -> str:
                write(line)
                raw = port.readline()
                return raw.decode().rstrip("\r\n") if raw else NO_REPLY

            return _replay(ask, write)
        finally:
            port.close()


def test_transcript_identical_over_pyvisa_tcp_and_pyserial_pty() -> None:
    tcp, rs232 = _via_pyvisa(), _via_pyserial()
    assert tcp == rs232
    idn, no_error, ranges, rate, item4, eesr0, values1, eesr1, values2, value_p, values_auto, i_range, \
        err_range, no_reply, err_header, err_none, integ_state, err_integ = tcp
    assert idn == "YOKOGAWA,WT310E,C2PH13047V,F1.03"
    assert no_error == '0,"No error"'
    assert ranges == "300.0E+00;0;500.0E-03;0"
    assert rate == "1.0E+00"
    assert item4 == "LAMBDA,1"
    assert (eesr0, eesr1) == ("0", "1")
    assert VALUES.match(values1) and VALUES.match(values2) and values1 != values2
    watts, volts, amps, pf = (float(v) for v in values1.split(","))
    assert abs(watts - 23.85) < 0.1 and abs(volts - 247.9) < 2 and abs(amps - 0.198) < 0.003 and abs(pf - 0.4855) < 0.01
    assert re.fullmatch(r"\d+\.\d\dE-03", values1.split(",")[2])  # 10 uA resolution on the 0.5 A range
    assert value_p == values2.split(",")[0]  # frozen between updates
    assert VALUES.match(values_auto) or "NAN" in values_auto
    assert float(i_range) in (0.2, 0.5)
    assert err_range == '222,"Data out of range"'
    assert no_reply == NO_REPLY
    assert err_header == '113,"Undefined header"'
    assert err_none == '0,"No error"'
    assert integ_state == "START"
    assert err_integ.startswith("845,")


def test_pyvisa_asrl_resource_talks_to_the_pty() -> None:
    with _simulator(pty=True) as sim:
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(f"ASRL{sim.pty_path}::INSTR", read_termination="\r\n", write_termination="\n",
                                timeout=2000)
        try:
            assert inst.query("*IDN?") == "YOKOGAWA,WT310E,C2PH13047V,F1.03"
            assert inst.query(":INP:VOLT:RANG?") == ":INP:VOLT:RANG 300.0E+00"  # header ON at power-on
        finally:
            inst.close()
            rm.close()
