"""The PTD and power-dev file formats: the documented examples, round trips, and refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlpower import ptdformat as pf

DOC_TIME = "02-27-2023 20:50:55.939"
DOC_T = 1677531055.939  # the same moment, from the calendar by hand: 2023-02-27 20:50:55.939 UTC
DOC_LINE = "Time,02-27-2023 20:50:55.939,Watts,109.350000,Volts,209.690000,Amps,0.626100,PF,0.832800"

# any millisecond from 2001 to 2100, as PTD writes them
millis = st.integers(min_value=978_307_200_000, max_value=4_102_444_799_999)
values = st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False))
marks = st.from_regex(r"[A-Za-z0-9_\-]{1,40}", fullmatch=True)


def test_the_documented_timestamp() -> None:
    assert pf.format_ptd_time(DOC_T) == DOC_TIME
    assert pf.parse_ptd_time(DOC_TIME) == pytest.approx(DOC_T, abs=1e-6)
    assert pf.parse_ptd_time(" 02-27-2023 20:50:55 ") == pytest.approx(1677531055.0)  # no fraction: whole second
    assert pf.parse_ptd_time("02-27-2023 20:50:55.5") == pytest.approx(1677531055.5)
    assert pf.format_ptd_time(DOC_T + 0.0009) == DOC_TIME  # truncated to the millisecond, as PTD prints


@given(millis)
def test_timestamps_round_trip_at_millisecond_resolution(ms: int) -> None:
    text = pf.format_ptd_time(ms / 1000)
    assert pf.parse_ptd_time(text) == pytest.approx(ms / 1000, abs=1e-6)
    assert pf.format_ptd_time(pf.parse_ptd_time(text)) == text


@pytest.mark.parametrize("bad", ["13-45-2023 20:50:55.939", "02-30-2023 20:50:55.939", "2023-02-27 20:50:55.939",
                                 "02-27-2023 20:50:55.1234567", "yesterday", "", "02-27-2023T20:50:55.939"])
def test_bad_timestamps_are_refused_with_the_text(bad: str) -> None:
    with pytest.raises(pf.PtdFormatError) as info:
        pf.parse_ptd_time(bad)
    assert info.value.raw == bad and isinstance(info.value, ValueError)


def test_log_time_and_the_other_file_lines() -> None:
    assert pf.format_log_time(1795891638.9) == "2026-11-28 18:47:18,900"
    assert pf.server_log_line(1795891638.9, "INFO", "hi") == "ptd-server 2026-11-28 18:47:18,900 [INFO] hi\n"
    assert pf.console_line(DOC_T, "Completed test") == f"{DOC_TIME}: Completed test"
    assert pf.ptd_out_text([("Watts,1", "Uncertainty,2")]) == \
        "Analyzer 1:\nPower: Watts,1 \nUncertainty: Uncertainty,2\n"
    assert pf.ptd_logs_text(["a\n", "b\n"]) == "Analyzer 1\na\nAnalyzer 2\nb\n"
    assert pf.spl_text(["x", "y"]) == "x\ny\n\n"


def test_watts_and_uncertainty_replies() -> None:
    assert pf.watts_reply([100.0, 200.0], 3) == "Watts,150.000000,100.000000,200.000000,3,1,2"
    assert pf.watts_reply([], 2) == "Watts,-1.000000,-1.000000,-1.000000,2,2,0"
    assert pf.uncertainty_reply([0.005, 0.002], 3, 1) == "Uncertainty,0.003500,0.002000,0.005000,3,1,2,0"
    assert pf.uncertainty_reply([], 2, 0) == "Uncertainty,-1.0,10000000.000000,0.000000,2,0,0,2"  # PTD's own text


def test_values_and_not_available() -> None:
    assert pf.format_value(109.35) == "109.350000"
    for missing in (None, float("nan"), float("inf")):
        assert pf.format_value(missing) == pf.NOT_AVAILABLE
    assert pf.parse_value("109.350000") == 109.35
    for missing in ("-1.000000", "-1", "nan", "inf", "x"):
        assert pf.parse_value(missing) is None


def test_the_documented_sample_line() -> None:
    assert pf.sample_line(DOC_T, 109.35, 209.69, 0.6261, 0.8328) == DOC_LINE
    parsed = pf.parse_sample_line(DOC_LINE + ",Mark,2023-02-27_20-37-33_testing\r\n")
    assert parsed is not None and parsed.mark == "2023-02-27_20-37-33_testing"
    assert parsed.t_utc_s == pytest.approx(DOC_T) and parsed.power_w == 109.35 and parsed.total.pf == "0.832800"
    assert parsed.text() == DOC_LINE + ",Mark,2023-02-27_20-37-33_testing"


@given(millis, values, values, values, values, st.one_of(st.none(), marks))
def test_sample_lines_round_trip(ms: int, watts: float | None, volts: float | None, amps: float | None,
                                 factor: float | None, mark: str | None) -> None:
    line = pf.sample_line(ms / 1000, watts, volts, amps, factor, mark)
    parsed = pf.parse_sample_line(line)
    assert parsed is not None and parsed.text() == line and parsed.mark == mark
    assert parsed.t_utc_s == pytest.approx(ms / 1000, abs=1e-6)
    assert parsed.power_w == (None if watts is None else pytest.approx(watts, abs=1e-6))


def test_channels_and_the_rl_to_spl_rewrite() -> None:
    multi = DOC_LINE + ",Watts,1,Volts,2,Amps,3,PF,4,Watts,5,Volts,6,Amps,7,PF,8"
    spl = pf.spl_line_of_rl(multi, "m")
    assert spl == DOC_LINE + ",Mark,m,Ch1,Watts,1,Volts,2,Amps,3,PF,4,Ch2,Watts,5,Volts,6,Amps,7,PF,8"
    assert pf.spl_line_of_rl(DOC_LINE + "\r\n", "s_testing") == DOC_LINE + ",Mark,s_testing"
    parsed = pf.parse_sample_line(spl)
    assert parsed is not None and [label for label, _ in parsed.channels] == ["Ch1", "Ch2"]
    assert parsed.channels[1][1] == pf.SampleGroup("5", "6", "7", "8") and parsed.text() == spl


@pytest.mark.parametrize("other", ["12-01-2023 10:00:00.000: Go with mark 'x'", "NOTICE: Buffer was emptied", "",
                                   "Time,02-27-2023 20:50:55.939,ERROR,Bad watts reading"])
def test_lines_that_are_no_samples(other: str) -> None:
    assert pf.parse_sample_line(other) is None


@pytest.mark.parametrize("bad", [
    "Time,13-45-2023 20:50:55.939,Watts,1,Volts,2,Amps,3,PF,4",
    "Time,yesterday,Watts,1,Volts,2,Amps,3,PF,4",
    "Time,02-27-2023 20:50:55.939,Watts,1,Volts,2,Amps",
    "Time,02-27-2023 20:50:55.939,Watts,1,Amps,2,Volts,3,PF,4",
    "Time,02-27-2023 20:50:55.939,Watts,1,Volts,2,Amps,3,PF,4,Mark",
    "Time,02-27-2023 20:50:55.939,Watts,1,Volts,2,Amps,3,PF,4,Mark,m,Ch1,Watts1,1",
])
def test_broken_sample_lines_raise_with_the_raw_line(bad: str) -> None:
    with pytest.raises(pf.PtdFormatError) as info:
        pf.parse_sample_line(bad)
    assert info.value.raw == bad


# --------------------------------------------------------------------------- multichannel lines

groups = st.builds(pf.SampleGroup.of, values, values, values, values)


def test_the_documented_multichannel_layout() -> None:
    # three PSUs on a WT333E (power-dev-protocol.md §3.4): the sum group carries only watts
    psu = pf.SampleGroup.of(91.06, 120.95, 0.8321, 0.9389)
    log = pf.multichannel_log_line(DOC_T, "notset", [(1, psu), (2, psu), (3, psu)])
    assert log == (f"Time,{DOC_TIME},Watts,273.180000,Volts,-1.000000,Amps,-1.000000,PF,-1.000000,Mark,notset,"
                   + ",".join(f"Ch{k},Watts,91.060000,Volts,120.950000,Amps,0.832100,PF,0.938900" for k in (1, 2, 3)))
    rl = pf.multichannel_rl_line(DOC_T, [psu, psu, psu])
    assert rl == (f"Time,{DOC_TIME},Watts,273.180000,Volts,-1.000000,Amps,-1.000000,PF,-1.000000,"
                  + ",".join("Watts,91.060000,Volts,120.950000,Amps,0.832100,PF,0.938900" for _ in range(3)))
    assert pf.spl_line_of_rl(rl, "notset") == log  # power-dev's rewrite of the RL line is the log line
    parsed = pf.parse_sample_line(rl)
    assert parsed is not None and parsed.mark is None and parsed.power_w == pytest.approx(273.18)
    assert parsed.channel_groups() == {1: psu, 2: psu, 3: psu}
    assert parsed.channel_groups()[2].values() == (91.06, 120.95, 0.8321, 0.9389)


def test_the_sum_group_leaves_out_channels_without_a_value() -> None:
    a, dead = pf.SampleGroup.of(100.0, 230.0, 0.5, 0.9), pf.SampleGroup.of(None, 230.0, None, None)
    assert pf.sum_group([a, dead, a]) == pf.SampleGroup.of(200.0, None, None, None)
    assert pf.sum_group([dead, dead]).watts == pf.NOT_AVAILABLE
    assert pf.sum_group([]).watts == pf.NOT_AVAILABLE


@given(millis, st.lists(groups, min_size=1, max_size=4), marks, st.integers(min_value=1, max_value=4))
def test_multichannel_lines_round_trip(ms: int, chans: list[pf.SampleGroup], mark: str, first: int) -> None:
    numbers = range(first, first + len(chans))
    log = pf.multichannel_log_line(ms / 1000, mark, list(zip(numbers, chans, strict=True)))
    rl = pf.multichannel_rl_line(ms / 1000, chans)
    for line in (log, rl):
        parsed = pf.parse_sample_line(line)
        assert parsed is not None and parsed.text() == line
        assert parsed.total == pf.sum_group(chans)
    parsed_log, parsed_rl = pf.parse_sample_line(log), pf.parse_sample_line(rl)
    assert parsed_log is not None and parsed_rl is not None and parsed_log.mark == mark
    assert parsed_log.channel_groups() == dict(zip(numbers, chans, strict=True))
    assert parsed_rl.channel_groups() == dict(enumerate(chans, start=1))  # RL groups are numbered from 1
    assert pf.spl_line_of_rl(rl, mark) == pf.multichannel_log_line(ms / 1000, mark, list(enumerate(chans, start=1)))


def test_a_label_that_names_no_channel_is_refused() -> None:
    line = DOC_LINE + ",Mark,m,Analyzer1,Watts,1,Volts,2,Amps,3,PF,4"
    parsed = pf.parse_sample_line(line)
    assert parsed is not None
    with pytest.raises(pf.PtdFormatError):
        parsed.channel_groups()


@pytest.mark.parametrize(("device_type", "channel", "expected"), [
    (77, [1, 3], (1, 2, 3)), (77, [2, 2], (2, 3)), (77, [3, 1], (3,)), (59, [1, 2], (1, 2)), (61, [1, 2], (1, 2)),
    (48, [3], (1, 2, 3)), (48, [1], (1,)),
])
def test_channel_numbers_from_the_c_argument(device_type: int, channel: list[int], expected: tuple[int, ...]) -> None:
    assert pf.channel_numbers(device_type, channel) == expected


@pytest.mark.parametrize(("device_type", "channel"), [(77, [1]), (77, [1, 2, 3]), (77, [0, 3]), (77, [1, 0]),
                                                      (48, [1, 2]), (48, [0]), (49, [1]), (77, [])])
def test_channel_arguments_that_do_not_fit_the_device_type(device_type: int, channel: list[int]) -> None:
    with pytest.raises(ValueError, match="channel|multichannel"):
        pf.channel_numbers(device_type, channel)


def test_several_analyzers_merged_lines_parse() -> None:
    from mlpower.ptdformat import parse_sample_line

    line = ("Time,12-03-2026 12:37:26.757,Watts,240.180000,Volts,-1.000000,Amps,-1.000000,PF,-1.000000,Mark,s_testing,"
            "Analyzer1,Time,12-03-2026 12:37:26.757,Watts,150.140000,Volts,229.610000,Amps,0.686600,PF,0.952400,"
            "Mark,s_testing,Analyzer2,missing")
    parsed = parse_sample_line(line)
    assert parsed is not None and parsed.power_w == 240.18 and parsed.mark == "s_testing"
    assert [(label, group.power_w) for label, group in parsed.channels] == [("Analyzer1", 150.14), ("Analyzer2", None)]
