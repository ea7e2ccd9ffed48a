"""Pure parts of the analyzer sources: ranges, uncertainty, the SCPI command table and reply
parser, resource strings and PTDaemon's formats. Expected values come from the reference docs."""

from __future__ import annotations

import math

import pytest
from mlpower.director import ptd_format, ptd_process, ranges, wt310e, wt310e_scpi
from mlpower.director.errors import (
    AnalyzerError,
    AnalyzerLost,
    AnalyzerTimeout,
    RangeError,
    ReplyParseError,
    ResourceError,
)
from mlpower.director.sources import Reading, open_source, parse_resource
from mlpower.director.uncertainty import (
    LINE,
    accuracy_for,
    relative_uncertainty,
    sample_uncertainty_w,
    within_limit,
)
from mlpower.schema import SampleFlag
from mlpower.testing import ScpiTranscript


def reading(v: float | None, a: float | None, p: float | None = 1.0, flags: int = 0) -> Reading:
    return Reading(0.0, p, v, a, None, None, None, None, flags)


# --------------------------------------------------------------------------- ranges


def test_range_lists_follow_the_doc() -> None:
    assert ranges.voltage_ranges(3) == (15, 30, 60, 150, 300, 600)
    assert ranges.voltage_ranges("6A") == (7.5, 15, 30, 75, 150, 300)
    assert ranges.current_ranges("WT310E", 3)[:6] == (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
    assert ranges.current_ranges("WT310E", 3)[-1] == 20
    assert ranges.current_ranges("WT310E", 6)[-1] == 10
    assert ranges.current_ranges("WT310EH")[-1] == 40
    assert ranges.current_ranges("YokogawaWT310")[-1] == 20  # PTD's model name


@pytest.mark.parametrize(
    ("value", "expected"),
    [(209.67, 300), (300.0, 300), (300.0000000001, 300), (300.1, 600), (0.1, 15), (15, 15)],
)
def test_voltage_rounds_up_to_a_hardware_range(value: float, expected: float) -> None:
    assert ranges.valid_voltage_range(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.9125, 1.0), (0.234, 0.5), (0.5059373, 1.0), (1.54132, 2.0), (0.004, 0.005), (20.0, 20.0)],
)
def test_current_rounds_up_to_a_hardware_range(value: float, expected: float) -> None:
    assert ranges.valid_current_range(value) == expected


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, 601.0])
def test_impossible_voltage_range_is_refused(bad: float) -> None:
    with pytest.raises(RangeError):
        ranges.valid_voltage_range(bad)


def test_current_above_the_largest_range_is_refused() -> None:
    with pytest.raises(RangeError, match="above the largest range 20"):
        ranges.valid_current_range(20.5)


def test_unknown_crest_factor_is_refused() -> None:
    with pytest.raises(RangeError, match="crest factor"):
        ranges.voltage_ranges(4)


def test_testing_ranges_apply_the_rule() -> None:
    # PD-#273 ranging: up to 247.92 V and 0.19868 A -> 300 V; 1.1 x 0.19868 = 0.2185 A -> 0.5 A
    samples = [reading(247.90, 0.19811), reading(247.92, 0.19868), reading(247.10, 0.1950)]
    assert ranges.testing_ranges(samples) == (300.0, 0.5)


def test_testing_current_margin_crosses_a_range_edge() -> None:
    # 0.95 A fits the 1 A range, but 1.1 x 0.95 = 1.045 A needs the 2 A range
    assert ranges.testing_ranges([reading(230.0, 0.95)]) == (300.0, 2.0)
    # 0.90 A x 1.1 = 0.99 A still fits 1 A
    assert ranges.testing_ranges([reading(230.0, 0.90)]) == (300.0, 1.0)


def test_testing_ranges_skip_samples_without_values() -> None:
    samples = [
        reading(None, None, None, SampleFlag.MISSING),
        reading(231.0, 4.0),
        reading(None, None, None, SampleFlag.OVERRANGE),
    ]
    assert ranges.testing_ranges(samples) == (300.0, 5.0)


def test_testing_ranges_use_magnitudes_for_reversed_wiring() -> None:
    assert ranges.testing_ranges([reading(230.0, -1.5)]) == (300.0, 2.0)


def test_testing_ranges_without_usable_samples_fail() -> None:
    with pytest.raises(RangeError, match="no ranging samples"):
        ranges.testing_ranges([])
    with pytest.raises(RangeError, match="no ranging samples"):
        ranges.testing_ranges([reading(None, None, None, SampleFlag.MISSING)])


def test_testing_ranges_above_the_meter_fail() -> None:
    with pytest.raises(RangeError):
        ranges.testing_ranges([reading(230.0, 19.0)])  # 20.9 A > 20 A


def test_zero_signal_gets_the_smallest_range() -> None:
    assert ranges.testing_ranges([reading(230.0, 0.0)]) == (300.0, 0.005)


def test_overrange_limit_is_140_percent() -> None:
    assert not ranges.is_overrange(0.7, 0.5)
    assert ranges.is_overrange(0.71, 0.5)
    assert not ranges.is_overrange(None, 0.5)
    assert not ranges.is_overrange(1.0, None)


# --------------------------------------------------------------------------- uncertainty


def test_uncertainty_worked_example_from_the_doc() -> None:
    # wt310e.md §2.2: 247.9 V, 0.199 A, 23.9 W, lambda 0.484 on 300 V / 0.5 A -> 0.43 % of reading
    u = sample_uncertainty_w(23.9, 247.9, 0.199, 0.484, 300.0, 0.5)
    assert u is not None
    assert relative_uncertainty(u, 23.9) == pytest.approx(0.0043, abs=0.00005)
    assert within_limit(u, 23.9) is True


def test_uncertainty_same_load_on_the_20a_range_is_far_above_the_limit() -> None:
    # the doc: about 6.4 % on the 20 A range (6 kW power range)
    u = sample_uncertainty_w(23.9, 247.9, 0.199, 0.484, 300.0, 20.0)
    assert relative_uncertainty(u, 23.9) == pytest.approx(0.064, abs=0.002)
    assert within_limit(u, 23.9) is False


def test_uncertainty_at_unity_power_factor_is_the_plain_spec() -> None:
    # lambda = 1: 0.1 % of reading + 0.05 % of the power range
    u = sample_uncertainty_w(250.0, 250.0, 1.0, 1.0, 300.0, 1.0)
    assert u == pytest.approx(0.001 * 250 + 0.0005 * 300)


def test_uncertainty_without_power_factor_uses_p_over_s() -> None:
    with_pf = sample_uncertainty_w(23.9, 247.9, 0.199, 23.9 / (247.9 * 0.199), 300.0, 0.5)
    assert sample_uncertainty_w(23.9, 247.9, 0.199, None, 300.0, 0.5) == pytest.approx(with_pf)


def test_uncertainty_crest_factor_6_doubles_the_range_term() -> None:
    cf3 = sample_uncertainty_w(250.0, 250.0, 1.0, 1.0, 300.0, 1.0)
    cf6 = sample_uncertainty_w(250.0, 250.0, 1.0, 1.0, 300.0, 1.0, crest_factor="6A")
    assert cf6 - cf3 == pytest.approx(0.0005 * 300)


def test_uncertainty_margin_scales() -> None:
    base = sample_uncertainty_w(23.9, 247.9, 0.199, 0.484, 300.0, 0.5)
    assert sample_uncertainty_w(23.9, 247.9, 0.199, 0.484, 300.0, 0.5, margin=1.5) == pytest.approx(1.5 * base)


def test_uncertainty_at_zero_power_factor_is_finite() -> None:
    u = sample_uncertainty_w(0.0, 230.0, 1.0, 0.0, 300.0, 1.0)
    assert u == pytest.approx(0.001 * 230.0)  # 0.1 % of S


@pytest.mark.parametrize(
    "args",
    [
        (None, 230.0, 1.0, 1.0, 300.0, 1.0),  # no power
        (230.0, 230.0, 1.0, 1.0, None, 1.0),  # auto range, range unknown
        (230.0, 230.0, 1.0, 1.0, 300.0, None),
        (math.nan, 230.0, 1.0, 1.0, 300.0, 1.0),
        (230.0, None, None, None, 300.0, 1.0),  # no S, no lambda
        (230.0, 230.0, 1.0, 1.0, 0.0, 1.0),
    ],
)
def test_uncertainty_that_cannot_be_evaluated_is_none(args: tuple) -> None:
    assert sample_uncertainty_w(*args) is None


def test_accuracy_bands() -> None:
    assert accuracy_for(50) == LINE
    assert accuracy_for(66) == LINE
    assert accuracy_for(0).pf_at_zero == 0
    assert accuracy_for(400).range == 0.002
    with pytest.raises(ValueError):
        accuracy_for(20000)


def test_relative_uncertainty_edge_cases() -> None:
    assert relative_uncertainty(None, 10.0) is None
    assert relative_uncertainty(1.0, 0.0) is None
    assert within_limit(None, 10.0) is None


# --------------------------------------------------------------------------- SCPI command table


def test_command_table_renders_the_transcript() -> None:
    assert wt310e_scpi.command("voltage_range", value=300.0) == ":INPUT:VOLTAGE:RANGE 300V"
    assert wt310e_scpi.command("current_range", value=0.5) == ":INPUT:CURRENT:RANGE 0.5A"
    assert wt310e_scpi.command("current_range", value=0.005) == ":INPUT:CURRENT:RANGE 0.005A"
    assert wt310e_scpi.command("voltage_auto", state=False) == ":INPUT:VOLTAGE:AUTO OFF"
    assert wt310e_scpi.command("header", state=False) == ":COMMUNICATE:HEADER OFF"
    assert wt310e_scpi.command("rate", token=wt310e_scpi.rate_token(1.0)) == ":RATE 1S"
    assert wt310e_scpi.rate_token(0.1) == "100MS"
    assert wt310e_scpi.items_command(("P", "U", "I", "LAMBDA")) == (
        ":NUMERIC:NORMAL:ITEM1 P,1;ITEM2 U,1;ITEM3 I,1;ITEM4 LAMBDA,1"
    )
    assert wt310e_scpi.COMMANDS["ranges"] == ":INPUT:VOLTAGE:RANGE?;AUTO?;:INPUT:CURRENT:RANGE?;AUTO?"


def test_command_needs_its_parameters() -> None:
    with pytest.raises(ValueError, match="needs parameter"):
        wt310e_scpi.command("voltage_range")


@pytest.mark.parametrize("interval", [0.2, 3.0, 0.0, -1.0])
def test_unsupported_update_interval_is_refused(interval: float) -> None:
    with pytest.raises(RangeError):
        wt310e_scpi.rate_token(interval)


# --------------------------------------------------------------------------- SCPI reply parser


def test_parse_identity() -> None:
    ident = wt310e_scpi.parse_identity("YOKOGAWA,WT310E,C2PH13047V,F1.03")
    assert (ident.manufacturer, ident.model, ident.serial, ident.firmware) == (
        "YOKOGAWA",
        "WT310E",
        "C2PH13047V",
        "1.03",
    )
    assert ident.is_wt300_family
    assert wt310e_scpi.parse_identity("YOKOGAWA,WT333,C2SF14011V,F1.01EM").firmware == "1.01EM"
    assert not wt310e_scpi.parse_identity("KEYSIGHT,34465A,MY123,A.03").is_wt300_family


@pytest.mark.parametrize("bad", ["", "YOKOGAWA", "YOKOGAWA,WT310E,C2PH", ",,,", "a,b,c,d,e"])
def test_bad_identity_raises_with_raw(bad: str) -> None:
    with pytest.raises(ReplyParseError) as info:
        wt310e_scpi.parse_identity(bad)
    assert info.value.raw == bad


def test_parse_numbers_transcript_line() -> None:
    values = wt310e_scpi.parse_numbers("23.85E+00,247.92E+00,198.11E-03,0.4855E+00", 4)
    assert [v for v, _ in values] == [23.85, 247.92, 0.19811, 0.4855]


@pytest.mark.parametrize(
    ("token", "status"),
    [("NAN", "nan"), ("nan", "nan"), ("INF", "inf"), ("-INF", "inf"), ("+INF", "inf"), ("9.91E+37", "nan"),
     ("9.9E+37", "inf"), ("-9.9E+37", "inf")],
)  # fmt: skip
def test_special_tokens_are_not_numbers(token: str, status: str) -> None:
    assert wt310e_scpi.parse_number(token) == (None, status)


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "0x10", "1e", "--1", "12 V", "infinityx"])
def test_garbage_number_raises_with_raw(bad: str) -> None:
    with pytest.raises(ReplyParseError) as info:
        wt310e_scpi.parse_number(bad, raw=f"raw<{bad}>")
    assert info.value.raw == f"raw<{bad}>"


def test_wrong_number_of_values_raises() -> None:
    with pytest.raises(ReplyParseError, match="expected 4 values, got 3") as info:
        wt310e_scpi.parse_numbers("1,2,3", 4)
    assert info.value.raw == "1,2,3"
    with pytest.raises(ReplyParseError, match="empty"):
        wt310e_scpi.parse_numbers("", 4)


def test_parse_error_queue_replies() -> None:
    assert wt310e_scpi.parse_error('0,"No error"') == (0, "No error")
    assert wt310e_scpi.parse_error('113,"Undefined header"') == (113, "Undefined header")
    assert wt310e_scpi.parse_error("222") == (222, "")
    assert wt310e_scpi.parse_error(':STATUS:ERROR 113,"Undefined header"') == (113, "Undefined header")
    with pytest.raises(ReplyParseError):
        wt310e_scpi.parse_error("No error")


def test_parse_ranges_with_and_without_header() -> None:
    state = wt310e_scpi.parse_ranges("300.0E+00;0;500.0E-03;0")
    assert state == wt310e_scpi.RangeState(300.0, False, 0.5, False)
    state = wt310e_scpi.parse_ranges(":INPUT:VOLTAGE:RANGE 600.0E+00;AUTO 1;:INPUT:CURRENT:RANGE 20.000E+00;AUTO 1")
    assert state == wt310e_scpi.RangeState(600.0, True, 20.0, True)
    for bad in ("300.0E+00;0;500.0E-03", "300;2;0.5;0", "x;0;0.5;0", "NAN;0;0.5;0"):
        with pytest.raises(ReplyParseError):
            wt310e_scpi.parse_ranges(bad)


def test_parse_rate_and_eesr() -> None:
    assert wt310e_scpi.parse_rate("1.0E+00") == 1.0
    assert wt310e_scpi.parse_rate("100MS") == 0.1
    assert wt310e_scpi.parse_rate("2S") == 2.0
    assert wt310e_scpi.parse_eesr("65") == 65
    with pytest.raises(ReplyParseError):
        wt310e_scpi.parse_eesr("-1")
    with pytest.raises(ReplyParseError):
        wt310e_scpi.parse_bool("2")


FIELDS = ("power_w", "voltage_v", "current_a", "power_factor")
RANGED = FIELDS + ("voltage_range_v", "current_range_a")


def test_build_reading_clean_sample() -> None:
    r = wt310e_scpi.build_reading(
        "23.85E+00,247.92E+00,198.11E-03,0.4855E+00", FIELDS, t_utc_s=1.5,
        voltage_range_v=300.0, current_range_a=0.5, auto=False,
    )  # fmt: skip
    assert (r.t_utc_s, r.power_w, r.voltage_v, r.current_a, r.power_factor) == (1.5, 23.85, 247.92, 0.19811, 0.4855)
    assert (r.voltage_range_v, r.current_range_a) == (300.0, 0.5)
    assert r.flags == 0 and r.usable
    assert r.uncertainty_w == pytest.approx(sample_uncertainty_w(23.85, 247.92, 0.19811, 0.4855, 300.0, 0.5))
    assert r.raw == "23.85E+00,247.92E+00,198.11E-03,0.4855E+00"


def test_build_reading_nan_transient_is_missing_not_a_number() -> None:
    r = wt310e_scpi.build_reading("NAN,247.90E+00,NAN,NAN", FIELDS, t_utc_s=0, voltage_range_v=300.0,
                             current_range_a=0.5, auto=True)  # fmt: skip
    assert r.power_w is None and r.current_a is None and r.power_factor is None
    assert r.voltage_v == 247.9
    assert r.flags & SampleFlag.MISSING and r.flags & SampleFlag.AUTO_RANGE
    assert r.uncertainty_w is None and not r.usable


def test_build_reading_inf_is_overrange() -> None:
    r = wt310e_scpi.build_reading("INF,247.90E+00,INF,NAN", FIELDS, t_utc_s=0, voltage_range_v=300.0,
                             current_range_a=0.2, auto=False)  # fmt: skip
    assert r.power_w is None and r.current_a is None
    assert r.flags & SampleFlag.OVERRANGE and r.flags & SampleFlag.MISSING
    assert r.uncertainty_w is None


def test_build_reading_value_beyond_140_percent_is_overrange() -> None:
    r = wt310e_scpi.build_reading("60.0E+00,230.0E+00,0.29E+00,0.9E+00", FIELDS, t_utc_s=0, voltage_range_v=300.0,
                             current_range_a=0.2, auto=False)  # fmt: skip
    assert r.flags & SampleFlag.OVERRANGE and r.uncertainty_w is None and not r.usable


def test_build_reading_eesr_overrange_bit() -> None:
    r = wt310e_scpi.build_reading(
        "23.85E+00,247.92E+00,198.11E-03,0.4855E+00",
        FIELDS,
        t_utc_s=0,
        voltage_range_v=300.0,
        current_range_a=0.5,
        auto=False,
        eesr=wt310e_scpi.EESR_OVR1 | 1,
    )
    assert r.flags & SampleFlag.OVERRANGE


def test_build_reading_range_items_and_range_change() -> None:
    reply = "23.85E+00,247.92E+00,198.11E-03,0.4855E+00,300.0E+00,200.0E-03"
    first = wt310e_scpi.build_reading(reply, RANGED, t_utc_s=0, voltage_range_v=None, current_range_a=None, auto=True)
    assert (first.voltage_range_v, first.current_range_a) == (300.0, 0.2)
    assert first.flags == SampleFlag.AUTO_RANGE
    assert first.uncertainty_w is not None
    again = wt310e_scpi.build_reading(reply, RANGED, t_utc_s=1, voltage_range_v=None, current_range_a=None, auto=True,
                                 previous_ranges=(300.0, 0.2))  # fmt: skip
    assert not again.flags & SampleFlag.RANGE_CHANGE
    changed = wt310e_scpi.build_reading(reply, RANGED, t_utc_s=2, voltage_range_v=None, current_range_a=None, auto=True,
                                   previous_ranges=(300.0, 0.5))  # fmt: skip
    assert changed.flags & SampleFlag.RANGE_CHANGE and changed.uncertainty_w is None


@pytest.mark.parametrize("bad", ["garbage", "1,2,3", "1,2,3,4,5", "1,2,x,4", ""])
def test_build_reading_bad_reply_keeps_raw(bad: str) -> None:
    with pytest.raises(ReplyParseError) as info:
        wt310e_scpi.build_reading(bad, FIELDS, t_utc_s=0, voltage_range_v=300.0, current_range_a=0.5, auto=False)
    assert info.value.raw == bad


def test_reading_row_matches_the_sample_columns() -> None:
    from mlpower.schema import SAMPLE_COLUMNS

    r = Reading(1.0, 2.0, 3.0, 4.0, 0.5, 300.0, 5.0, 0.1, 0, "raw")
    assert list(r.row()) == [c.name for c in SAMPLE_COLUMNS]


# --------------------------------------------------------------------------- resource strings


@pytest.mark.parametrize(
    ("resource", "kind"),
    [
        ("TCPIP0::127.0.0.1::10001::SOCKET", "visa"),
        ("TCPIP::192.168.1.123::INSTR", "visa"),
        ("USB0::0x0B21::0x0025::C2PH13047V::INSTR", "visa"),
        ("GPIB0::20::INSTR", "visa"),
        ("ASRL/dev/pts/3::INSTR", "visa"),
        ("/dev/ttyUSB0", "serial"),
        ("/dev/pts/3", "serial"),
        ("COM3", "serial"),
        ("ptd://127.0.0.1:8888", "ptd"),
        ("nvml", "nvml"),
        ("nvml:1", "nvml"),
        ("rapl", "rapl"),
        ("rapl:intel-rapl:0", "rapl"),
    ],
)
def test_resource_kinds(resource: str, kind: str) -> None:
    assert parse_resource(resource).kind == kind


def test_resource_parts() -> None:
    assert parse_resource("ptd://[::1]:8888") == parse_resource("ptd://[::1]:8888")
    ptd = parse_resource("ptd://10.0.0.2:9999")
    assert (ptd.host, ptd.port) == ("10.0.0.2", 9999)
    assert parse_resource("nvml:2").index == 2
    assert parse_resource("rapl:package-0").address == "package-0"


@pytest.mark.parametrize(
    "bad", ["", "   ", "http://x", "ptd://host", "ptd://host:0", "ptd://host:99999", "ptd:host:1", "nvml:x", "TCPIP0",
            "foo::bar", "wt310e", "/dev/../etc/passwd", "ASRL/dev/../etc/passwd::INSTR", "/dev/pts/../../root/x"],
)  # fmt: skip
def test_bad_resource_strings(bad: str) -> None:
    with pytest.raises(ResourceError):
        parse_resource(bad)


def test_open_source_refuses_unknown_options() -> None:
    with pytest.raises(ResourceError, match="bad option"):
        open_source("TCPIP0::127.0.0.1::10001::SOCKET", no_such_option=1)
    with pytest.raises(ResourceError, match="bad option"):
        open_source("rapl", nonsense=True)


# --------------------------------------------------------------------------- PTDaemon formats

RANGING_MARK = "2021-01-22_15-05-02_loadgen_ranging"
DATA_LOG = [
    "Time,01-22-2021 15:05:00.100,NOTICE,Analyzer identity response of 32 bytes: YOKOGAWA,WT310,C2PH13047V,F1.03",
    "Buffer was 1.000E+00;1;300.0E+00;1",
    f"Time,01-22-2021 15:05:03.939,Watts,22.970000,Volts,227.370000,Amps,0.204340,PF,0.494400,Mark,{RANGING_MARK}",
    "Time,01-22-2021 15:05:04.939,ERROR,Bad volts reading nan from WT310",
    f"Time,01-22-2021 15:05:04.940,Watts,25.650000,Volts,227.100000,Amps,0.225410,PF,0.500000,Mark,{RANGING_MARK}",
    "Time,01-22-2021 15:05:05.939,Watts,99.000000,Volts,250.000000,Amps,9.000000,PF,0.500000,Mark,other",
    "Time,11-13-2020 22:39:00.239,Watts,275.630000,Volts,-1.000000,Amps,-1.000000,PF,-1.000000,Mark,notset,"
    "Ch1,Watts,91.960000,Volts,120.910000,Amps,0.810300,PF,0.938600,"
    "Ch2,Watts,91.870000,Volts,120.850000,Amps,0.810400,PF,0.938500,"
    "Ch3,Watts,91.800000,Volts,120.750000,Amps,0.810200,PF,0.938400",
    "Time,11-13-2020 22:39:01.239,Watts,276.000000,Volts,-1.000000,Amps,-1.000000,PF,-1.000000,Mark,notset,"
    "Ch1,Watts,92.000000,Volts,120.950000,Amps,0.832100,PF,0.938600,"
    "Ch2,Watts,92.000000,Volts,120.800000,Amps,0.810000,PF,0.938500,"
    "Ch3,Watts,92.000000,Volts,120.700000,Amps,0.810000,PF,0.938400",
]


def test_ranging_maxima_single_channel_vectors() -> None:
    for channel in (None, (0, 0), (1, 0)):
        result = ptd_format.ranging_maxima(DATA_LOG, RANGING_MARK, channel)
        # the maxima of PD-TEST's vector; the mean of the two positive watts here is (22.97 + 25.65) / 2
        assert (result.max_volts, result.max_amps, result.avg_watts) == ("227.370000", "0.225410", "24.310000")
        assert result.lines == 2
    assert ptd_format.ranging_maxima(DATA_LOG, RANGING_MARK).testing_args() == ("227.370000", str(0.225410 * 1.1))


def _maxima(mark: str, channel: tuple[int, int]) -> tuple[str | None, str | None]:
    result = ptd_format.ranging_maxima(DATA_LOG, mark, channel)
    return result.max_volts, result.max_amps


def test_ranging_maxima_channel_subsets() -> None:
    assert _maxima("notset", (3, 1)) == ("120.750000", "0.810200")
    assert _maxima("notset", (2, 2)) == ("120.850000", "0.810400")
    assert _maxima("notset", (1, 3)) == ("120.950000", "0.832100")
    with pytest.raises(RangeError, match="extra ptd channels"):
        ptd_format.ranging_maxima(DATA_LOG, "notset", (2, 4))


def test_ranging_maxima_parse_error_and_no_match() -> None:
    bad = DATA_LOG[-1].replace("Mark,notset,Ch1,Watts,", "Mark,notset1,Ch1,Watts1,")
    with pytest.raises(ReplyParseError, match="Expected 'Watts', got 'Watts1'") as info:
        ptd_format.ranging_maxima([bad], "notset1", (1, 3))
    assert info.value.raw == bad
    nothing = ptd_format.ranging_maxima(DATA_LOG, "no-such-mark")
    assert (nothing.max_volts, nothing.max_amps, nothing.avg_watts, nothing.lines) == (None, None, "-1.000000", 0)
    with pytest.raises(RangeError):
        nothing.testing_args()


def test_data_line_parsing() -> None:
    sample = ptd_format.parse_data_line(DATA_LOG[2] + "\r\n")
    assert sample is not None
    assert sample.mark == RANGING_MARK and sample.total.volts == "227.370000"
    assert sample.t_utc_s == pytest.approx(1611327903.939)
    assert ptd_format.parse_data_line(DATA_LOG[0]) is None
    assert ptd_format.parse_data_line(DATA_LOG[1]) is None
    assert ptd_format.parse_data_line("12-01-2023 10:00:00.000: Go with mark 'x'") is None
    rl = ptd_format.parse_data_line("Time,02-27-2023 20:50:55.939,Watts,109.35,Volts,209.69,Amps,0.6261,PF,0.8328")
    assert rl is not None and rl.mark is None


@pytest.mark.parametrize(
    "bad",
    [
        "Time,13-45-2023 20:50:55.939,Watts,1,Volts,2,Amps,3,PF,4",  # month 13
        "Time,yesterday,Watts,1,Volts,2,Amps,3,PF,4",
        "Time,02-27-2023 20:50:55.939,Watts,1,Volts,2,Amps",
        "Time,02-27-2023 20:50:55.939,Watts,1,Amps,2,Volts,3,PF,4",
        "Time,02-27-2023 20:50:55.939,Watts,1,Volts,2,Amps,3,PF,4,Mark",
    ],
)
def test_bad_data_lines_raise_with_raw(bad: str) -> None:
    with pytest.raises(ReplyParseError) as info:
        ptd_format.parse_data_line(bad)
    assert info.value.raw == bad


def test_ptd_replies() -> None:
    ident = ptd_format.parse_identify(
        "YokogawaWT210,1000,1,1,1,1,0,0,1,version=1.10.0-82175bac-20220817,OS=Windows 8 / Server 2012,"
        "mode=power,1,1,1,0,0,no_cal_date,YOKOGAWA;760401;0;F1.12"
    )
    assert (ident.model, ident.version, ident.meter_idn) == ("YokogawaWT210", "1.10.0", "YOKOGAWA;760401;0;F1.12")
    rr = ptd_format.parse_rr("Ranges,1,1.000000,1,300.000000")
    assert (rr.initial_amps, rr.initial_volts) == ("Auto", "Auto")
    fixed = ptd_format.parse_rr("Ranges,0,0.500000,0,300.000000")
    assert (fixed.initial_amps, fixed.initial_volts) == ("0.500000", "300.000000")
    unknown = ptd_format.parse_rr("Ranges,0,-1.000000,-1,-1.000000")
    assert (unknown.initial_amps, unknown.initial_volts) == ("Auto", "Auto")
    assert ptd_format.parse_rl_header("Last 12 samples") == 12
    assert ptd_format.parse_rl_header("No unread samples") == 0
    watts = ptd_format.parse_stats("Watts,267.269387,158.020000,270.460000,718,0,718", "Watts")
    assert watts.avg == pytest.approx(267.269387)


@pytest.mark.parametrize(
    ("fn", "bad"),
    [
        (ptd_format.parse_rr, "Ranges,1,1.0,1"),
        (ptd_format.parse_rr, "Ranges,x,1.0,1,300"),
        (ptd_format.parse_rr, "Error: unknown"),
        (ptd_format.parse_rl_header, "Invalid number of parameters"),
        (ptd_format.parse_rl_header, "Last many samples"),
        (ptd_format.parse_identify, "Unknown command: Identify"),
        (ptd_format.parse_identify, ""),
        (lambda r: ptd_format.parse_stats(r, "Watts"), "Uncertainty,1,2,3,4"),
        (lambda r: ptd_format.parse_stats(r, "Watts"), "Watts,a,b,c,d"),
    ],
)
def test_bad_ptd_replies_raise_with_raw(fn, bad: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ReplyParseError) as info:
        fn(bad)
    assert info.value.raw == bad


def test_ptd_argv_follows_power_dev_order() -> None:
    argv = ptd_process.build_ptd_argv("ptd", log_path="/tmp/l.log", port=8888, device_type=49,
                                      device_port="/dev/usbtmc0")
    assert argv == ["ptd", "-l", "/tmp/l.log", "-p", "8888", "49", "/dev/usbtmc0"]
    argv = ptd_process.build_ptd_argv(["ptd.exe"], log_path="l", port=8889, device_type=8, device_port="8",
                                   interface_flag="-g", gpib_board=0, channel=(1,), dc_flag="-D")  # fmt: skip
    assert argv == ["ptd.exe", "-l", "l", "-p", "8889", "-b", "0", "-c", "1", "-D", "-g", "8", "8"]
    with pytest.raises(AnalyzerError):
        ptd_process.build_ptd_argv("", log_path="l", port=1, device_type=49, device_port="x")


@pytest.mark.parametrize(
    ("resource", "options"),
    [
        ("/dev/ttyUSB0", {"backend": "@py"}),  # a pyvisa option on a pyserial resource
        ("ptd://127.0.0.1:8888", {"port": 1}),  # the resource already says it
        ("nvml:0", {"index": 1}),
        ("rapl", {"zone": "dram"}),
    ],
)
def test_open_source_refuses_options_that_do_not_apply(resource: str, options: dict) -> None:
    with pytest.raises(ResourceError, match="bad option"):
        open_source(resource, **options)


def test_rate_for_interval() -> None:
    assert wt310e_scpi.rate_for_interval(1.0) == 1.0
    assert wt310e_scpi.rate_for_interval(3.0) == 1.0  # divides 3 s
    assert wt310e_scpi.rate_for_interval(60.0) == 5.0
    assert wt310e_scpi.rate_for_interval(0.35) == 0.25  # none divides 0.35 s: the largest below
    for bad in (0.05, 0.0, -1.0, math.nan):
        with pytest.raises(RangeError):
            wt310e_scpi.rate_for_interval(bad)


# --------------------------------------------------------------------------- the WT310E driver on a transcript

NO_ERROR = '0,"No error"'
ITEMS_6 = ":NUMERIC:NORMAL:ITEM1 P,1;ITEM2 U,1;ITEM3 I,1;ITEM4 LAMBDA,1;ITEM5 URANGE,1;ITEM6 IRANGE,1"
ITEMS_4 = ":NUMERIC:NORMAL:ITEM1 P,1;ITEM2 U,1;ITEM3 I,1;ITEM4 LAMBDA,1"
CONNECT = [  # wt310e.md §3.1, for an older WT310 that does not know the range items
    ("*CLS", None), ("*IDN?", "YOKOGAWA,WT310,C2PH13047V,F1.03"), (":COMMUNICATE:REMOTE ON", None),
    (":COMMUNICATE:HEADER OFF", None), (":COMMUNICATE:VERBOSE ON", None), (":STATUS:QMESSAGE ON", None),
    (":STATUS:ERROR?", NO_ERROR), (":INPUT:MODE RMS", None), (":INPUT:CFACTOR 3", None), (":RATE 1S", None),
    (":STATUS:ERROR?", NO_ERROR),
    (":NUMERIC:FORMAT ASCII", None), (":NUMERIC:NORMAL:NUMBER 6", None), (ITEMS_6, None),
    (":STATUS:ERROR?", '113,"Undefined header"'), (":STATUS:ERROR?", NO_ERROR),  # refused: fall back
    (":NUMERIC:FORMAT ASCII", None), (":NUMERIC:NORMAL:NUMBER 4", None), (ITEMS_4, None),
    (":STATUS:ERROR?", NO_ERROR),
    (":STATUS:FILTER1 FALL", None), (":STATUS:EESR?", "0"),
    (":INPUT:VOLTAGE:RANGE?;AUTO?;:INPUT:CURRENT:RANGE?;AUTO?", "300.0E+00;1;1.000E+00;1"),
    (":STATUS:ERROR?", NO_ERROR),
]  # fmt: skip


def test_a_meter_without_range_items_is_configured_without_them() -> None:
    transcript = ScpiTranscript(CONNECT)
    src = wt310e.WT310E(transcript, update_interval_s=1.0)  # type: ignore[arg-type]
    src.open()
    assert transcript.finished and not src.has_range_items and src.identity is not None
    assert src.identity.model == "WT310"


def test_an_unanswered_query_is_explained_by_the_error_queue_or_taken_as_lost() -> None:
    transcript = ScpiTranscript([*CONNECT, (":MEASURE:NOTHING?", AnalyzerTimeout("no reply")),
                                 (":STATUS:ERROR?", '113,"Undefined header"'), (":STATUS:ERROR?", NO_ERROR),
                                 (":MEASURE:NOTHING?", AnalyzerTimeout("no reply")), (":STATUS:ERROR?", NO_ERROR)])
    src = wt310e.WT310E(transcript, update_interval_s=1.0)  # type: ignore[arg-type]
    src.open()
    with pytest.raises(AnalyzerError, match="113") as refused:
        src.query(":MEASURE:NOTHING?")
    assert refused.value.code == 113 and not isinstance(refused.value, AnalyzerLost)
    with pytest.raises(AnalyzerTimeout):
        src.query(":MEASURE:NOTHING?")  # nothing in the queue either: the meter is gone
    assert transcript.finished
    with pytest.raises(AnalyzerLost):
        src.identify()
