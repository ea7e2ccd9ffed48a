"""The command language: forms, paths, headers, parameters, error codes, formats."""

from __future__ import annotations

import math
import struct

import pytest
from mlpower.analyzer_sim import VirtualClock
from mlpower.analyzer_sim.instrument import Instrument
from mlpower.analyzer_sim.loads import parse_load
from mlpower.analyzer_sim.scpi import COMMANDS, Dispatcher, measured_text, nr3, parse_pattern


@pytest.fixture
def d() -> Dispatcher:
    return Dispatcher(Instrument(parse_load("constant:250"), VirtualClock(), seed=0))


def _errors(d: Dispatcher) -> list[str]:
    """Drain the error queue (header OFF for the duration, so replies are bare)."""
    header = d.inst.comm.header
    d.inst.comm.header = False
    found = []
    for _ in range(50):
        reply = d.execute(":STAT:ERR?")
        if reply == b'0,"No error"':
            break
        found.append(reply.decode())
    d.inst.comm.header = header
    return found


def test_short_long_and_mixed_case_forms_are_one_command(d: Dispatcher) -> None:
    d.execute(":COMM:HEAD OFF")
    for spelling in (":INPUT:VOLTAGE:RANGE?", ":INP:VOLT:RANG?", ":input:Voltage:rang?", ":VOLT:RANG?",
                     "INPut:VOLTage:RANGe?"):
        assert d.execute(spelling) == b"300.0E+00", spelling
    assert d.execute(":Numeric:Normal:VALue? 3") == d.execute(":NUM:VAL? 3")  # [:NORMal] is optional
    assert _errors(d) == []


def test_a_half_abbreviated_mnemonic_is_undefined(d: Dispatcher) -> None:
    assert d.execute(":INPU:VOLT:RANG?") is None
    assert _errors(d) == ['113,"Undefined header"']


def test_compound_message_keeps_the_path_and_joins_replies(d: Dispatcher) -> None:
    d.execute(":COMM:HEAD OFF;:INP:VOLT:AUTO OFF;RANG 150V;:INP:CURR:RANG 5A")
    assert d.execute(":INP:VOLT:RANG?;AUTO?;:INP:CURR:RANG?;AUTO?") == b"150.0E+00;0;5.000E+00;0"


def test_header_and_verbose_shape_the_replies(d: Dispatcher) -> None:
    assert d.execute(":INP:VOLT:RANG?") == b":INP:VOLT:RANG 300.0E+00"  # power-on: header ON, verbose OFF
    d.execute(":COMM:VERB ON")
    assert d.execute(":INP:VOLT:RANG?") == b":INPUT:VOLTAGE:RANGE 300.0E+00"
    assert d.execute(":NUM:NORM:ITEM6?") == b":NUMERIC:NORMAL:ITEM6 LAMBDA,1"
    assert not d.execute(":NUM:NORM:VAL? 1").startswith(b":")  # data come without a header
    d.execute(":COMM:HEAD OFF;VERB OFF")
    assert d.execute(":NUM:NORM:ITEM6?") == b"LAMB,1"


def test_rst_restores_measurement_but_not_communication_settings(d: Dispatcher) -> None:
    d.execute(":COMM:HEAD OFF;:INP:VOLT:RANG 600V;:INP:CFAC 6;:RATE 250MS")
    d.execute("*RST")
    assert d.execute(":INP:VOLT:RANG?;AUTO?;:INP:CFAC?;:RATE?") == b"300.0E+00;1;3;1.0E+00"


@pytest.mark.parametrize(("line", "code"), [
    (":FOO:BAR", 113),
    (":INP:CURR:RANG 7A", 222),
    (":INP:CURR:RANG", 109),
    (":INP:CURR:RANG 1A,2A", 108),
    (":INP:MODE BOGUS", 141),
    (":INP:CURR:RANG 5W", 131),
    (":INP:CURR:RANG ABC", 104),
    (":NUM:NORM:ITEM300 U,1", 114),
    (":NUM:NORM:NUM 0", 222),
    (":INTEG:STOP", 844),
    (":RATE 3S", 222),
])
def test_bad_commands_queue_their_code(d: Dispatcher, line: str, code: int) -> None:
    assert d.execute(line) is None
    assert [e.split(",")[0] for e in _errors(d)] == [str(code)]


def test_a_bad_query_gets_no_reply_but_good_ones_in_the_same_message_do(d: Dispatcher) -> None:
    d.execute(":COMM:HEAD OFF")
    assert d.execute(":FOO?") is None
    assert d.execute("*IDN?;:FOO?;:RATE?") == b"YOKOGAWA,WT310E,C2PH13047V,F1.03;1.0E+00"
    assert len(_errors(d)) == 2


def test_integration_state_errors(d: Dispatcher) -> None:
    d.execute(":INTEG:START")
    d.execute(":INTEG:START")
    d.execute(":INTEG:RESET")
    d.execute(":INP:CURR:RANG 5A")
    d.execute(":INTEG:STOP;:INTEG:RESET")
    assert [e.split(",")[0] for e in _errors(d)] == ["842", "845", "813"]
    d.execute(":COMM:HEAD OFF")
    assert d.execute(":INTEG:STATE?") == b"RES"


def test_error_queue_overflows_to_350_and_qmessage_off_drops_the_text(d: Dispatcher) -> None:
    for _ in range(40):
        d.execute(":FOO")
    d.execute(":STAT:QMES OFF;:COMM:HEAD OFF")
    codes = []
    for _ in range(50):
        reply = d.execute(":STAT:ERR?")
        if reply == b"0":
            break
        codes.append(reply)
    assert len(codes) == 30 and codes[-1] == b"350" and set(codes[:-1]) == {b"113"}
    d.execute("*CLS")


def test_float_format_is_a_big_endian_block(d: Dispatcher) -> None:
    d.execute(":NUM:FORM FLOAT;:NUM:NORM:NUM 10")
    block = d.execute(":NUM:NORM:VAL?")
    assert block is not None and block.startswith(b"#40040")
    values = struct.unpack(">10f", block[6:])
    assert 220 < values[0] < 240 and 240 < values[2] < 260
    assert math.isclose(values[9], 9.91e37, rel_tol=1e-6)  # item 10 is none: NAN sentinel


def test_none_item_reads_nan_and_value_numbers_follow_number(d: Dispatcher) -> None:
    d.execute(":COMM:HEAD OFF;:NUM:NORM:CLEAR ALL;:NUM:NORM:ITEM2 P;:NUM:NORM:NUM 3")
    parts = d.execute(":NUM:NORM:VAL?").split(b",")
    assert parts[0] == b"NAN" and parts[2] == b"NAN" and 240 < float(parts[1]) < 260


def test_comm_wait_returns_after_the_next_update(d: Dispatcher) -> None:
    clock = d.inst.clock
    d.execute(":STAT:FILT1 FALL;:STAT:EESR?")
    start = clock.now()
    d.execute(":COMM:WAIT 1")
    assert 0 < clock.now() - start <= 1.01


def test_number_formats() -> None:
    assert nr3(600.0) == "600.0E+00" and nr3(0.5) == "500.0E-03" and nr3(1.0) == "1.000E+00"
    assert measured_text(0.19811, 1e-5) == "198.11E-03"
    assert measured_text(247.92, 0.01) == "247.92E+00"
    assert measured_text(0.4855, 1e-4, fixed_point=True) == "0.4855E+00"
    assert measured_text(math.inf, 0.01) == "INF" and measured_text(math.nan, 0.01) == "NAN"


def test_the_command_table_is_data_with_unique_patterns() -> None:
    patterns = [c.pattern.upper() for c in COMMANDS]
    assert len(patterns) == len(set(patterns))
    assert all(c.set or c.query for c in COMMANDS)
    assert [n.short for n in parse_pattern("[:INPut]:VOLTage:RANGe")] == ["INP", "VOLT", "RANG"]


def test_a_number_too_large_for_a_float_is_data_out_of_range(d: Dispatcher) -> None:
    assert d.execute(":STAT:EESE 1e999") is None
    errors = _errors(d)
    assert len(errors) == 1 and errors[0].startswith("222,"), errors
