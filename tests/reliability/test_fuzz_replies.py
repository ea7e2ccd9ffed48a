"""Fuzz the director's analyzer-reply parsers (WT310E SCPI replies, PTDaemon replies and data lines).

Every parser either returns or raises the documented ``ReplyParseError`` carrying the raw reply;
any other exception is a crash (the source would die with a traceback instead of naming the reply).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlpower import ptdformat
from mlpower.director import ptd_format
from mlpower.director import wt310e_scpi as scpi
from mlpower.director.errors import ReplyParseError

from tests.reliability.ledger import LEDGER
from tests.reliability.mutate import NASTY_FIELDS, mutated

DATA_LINE = ("Time,01-22-2021 15:05:05.939,Watts,99.000000,Volts,250.000000,Amps,9.000000,PF,0.500000,Mark,m_ranging,"
             "Ch1,Watts,1.0,Volts,230.0,Amps,0.1,PF,1.0")
FIELDS = ("power_w", "voltage_v", "current_a", "power_factor")


VALUES = st.sampled_from(NASTY_FIELDS) | st.floats().map(str) | st.integers(-10, 10**6).map(str)


@st.composite
def ptd_data_lines(draw: st.DrawFn) -> str:
    """Sample-shaped lines whose values (and sometimes timestamp) are anything: reach the numeric code."""
    stamp = draw(st.sampled_from(["01-22-2021 15:05:05.939"] * 4 + ["13-45-2021 99:00:00", "02-30-2021 00:00:00.5"]))
    value = st.floats().map(str) | st.sampled_from(NASTY_FIELDS)
    groups = [",".join(f"{tag},{draw(value)}" for tag in ("Watts", "Volts", "Amps", "PF"))
              for _ in range(draw(st.integers(1, 3)))]
    channels = "".join(f",Ch{k},{g}" for k, g in enumerate(groups[1:], start=1))
    return f"Time,{stamp},{groups[0]},Mark,m_ranging{channels}"


def _reading(reply: str) -> Any:
    return scpi.build_reading(reply, FIELDS, t_utc_s=0.0, voltage_range_v=300.0, current_range_a=1.0, auto=True,
                                previous_ranges=(150.0, 0.5), eesr=0)


def _maxima(reply: str) -> Any:
    lines = [DATA_LINE, reply, reply.replace("Mark,m_ranging,", "")]
    return ptd_format.ranging_maxima(lines, "m_ranging")


# (target, parser, valid replies it is fed and mutated from, separator for field mutations)
PARSERS: list[tuple[str, Callable[[str], Any], list[str], str]] = [
    ("wt310e identity", scpi.parse_identity, ["YOKOGAWA,WT310E,C2PH13047V,F1.03", "*IDN YOKOGAWA,WT310,1,F2"], ","),
    ("wt310e numbers", scpi.parse_numbers, ["1.234E+02,230.1E+00,500.0E-03,0.9E+00", "NAN,INF,9.91E+37,-1"], ","),
    ("wt310e reading", _reading, ["1.234E+02,230.1E+00,500.0E-03,0.9E+00", "NAN,230.0E+00,INF,1"], ","),
    ("wt310e bool", scpi.parse_bool, ["1", ":INP:VOLT:AUTO ON", "OFF"], " "),
    ("wt310e float", scpi.parse_float, ["300.0E+00", ":INPUT:VOLTAGE:RANGE 15.0E+00"], " "),
    ("wt310e error", scpi.parse_error, ['113,"Undefined header"', "0", ':STAT:ERR 0,"No error"'], ","),
    ("wt310e ranges", scpi.parse_ranges, ["300.0E+00;0;500.0E-03;0", ":INP:VOLT:RANG 15.0E+00;1;1.0E+00;1"], ";"),
    ("wt310e rate", scpi.parse_rate, ["1.0E+00", "100MS", ":RATE 250MS", "2S"], " "),
    ("wt310e eesr", scpi.parse_eesr, ["0", ":STAT:EESR 16"], " "),
    ("ptd identify", ptd_format.parse_identify, ["YokogawaWT310,version=1.11.1-abc,YOKOGAWA;760401;0;F1.12"], ","),
    ("ptd rr", ptd_format.parse_rr, ["Ranges,1,1.000000,1,300.000000", "Ranges,0,0.500000,0,300.000000"], ","),
    ("ptd rl header", ptd_format.parse_rl_header, ["Last 5 samples", "Last 1 sample", "No unread samples"], " "),
    ("ptd watts", lambda r: ptd_format.parse_stats(r, "Watts"), ["Watts,100.0,99.0,101.0,5,0,0,5"], ","),
    ("ptd uncertainty", lambda r: ptd_format.parse_stats(r, "Uncertainty"),
     ["Uncertainty,-1.0,10000000.000000,0.000000,1,0,0,1"], ","),
    ("ptd data line", ptd_format.parse_data_line, [DATA_LINE, "NOTICE: Buffer was emptied"], ","),
    ("ptd ranging maxima", _maxima, [DATA_LINE], ","),
    ("ptd spl line", lambda r: ptdformat.spl_line_of_rl(r, "m_testing"), [DATA_LINE], ","),
]


def _parse_or_refuse(target: str, parse: Callable[[str], Any], reply: str) -> None:
    LEDGER.fuzzed(f"reply parser: {target}")
    try:
        parse(reply)
    except ReplyParseError as exc:
        assert repr(exc.raw) in str(exc), "the message shows the reply"
        assert isinstance(exc.raw, str) and exc.raw in reply, ("raw must be (part of) what was received", exc.raw)
    except Exception as exc:
        LEDGER.crash(f"reply parser {target}: {type(exc).__name__}: {exc} on {reply!r}")
        raise


@pytest.mark.parametrize(("target", "parse", "valid", "sep"), PARSERS, ids=[p[0] for p in PARSERS])
def test_reply_parsers_parse_or_raise_reply_parse_error(target: str, parse: Callable[[str], Any], valid: list[str],
                                                        sep: str) -> None:
    for reply in valid:
        parse(reply)  # the seeds themselves parse: the mutations start from real replies

    numbers = st.lists(VALUES, min_size=1, max_size=5).map(sep.join)
    replies = mutated(st.sampled_from(valid), sep) | numbers | st.text(max_size=60)
    if target.startswith("ptd"):
        replies = replies | ptd_data_lines() | mutated(ptd_data_lines(), sep)

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(replies)
    def fuzz(reply: str) -> None:
        _parse_or_refuse(target, parse, reply)

    fuzz()
