"""The measurement physics: accuracy, resolution, overrange, floor, clipping, auto range, integration."""

from __future__ import annotations

import math
import random
import socket
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st
from mlpower.analyzer_sim import VirtualClock, physics, start_simulator
from mlpower.analyzer_sim.instrument import Instrument, PhysicsOptions
from mlpower.analyzer_sim.loads import parse_load
from mlpower.analyzer_sim.scpi import Dispatcher

FIXED_300V_2A = physics.Ranges(300.0, 2.0, "3")
MAINS = physics.Mains()


def _instrument(load: str = "constant:250", **options: object) -> tuple[Instrument, Dispatcher, VirtualClock]:
    clock = VirtualClock()
    inst = Instrument(parse_load(load), clock, seed=3, options=PhysicsOptions(**options))  # type: ignore[arg-type]
    return inst, Dispatcher(inst), clock


def test_600_readings_of_250w_on_fixed_ranges_are_within_the_datasheet_uncertainty() -> None:
    inst, d, _ = _instrument("constant:250.0")
    d.execute(":COMM:HEAD OFF;:INP:VOLT:RANG 300V;:INP:CURR:RANG 2A;:RATE 100MS;:STAT:FILT1 FALL")
    d.execute(":NUM:NORM:NUM 3;:NUM:NORM:ITEM1 P;ITEM2 U;ITEM3 I")
    readings = []
    for _ in range(600):
        d.execute(":STAT:EESR?")
        d.execute(":COMM:WAIT 1")  # the virtual clock jumps to the next update: 600 updates in no time
        reply = d.execute(":NUM:NORM:VAL?")
        assert reply is not None
        readings.append((float(reply.split(b",")[0]), inst.reading.uncertainty_w))
    powers = [p for p, _ in readings]
    assert len(set(powers)) > 50  # not one frozen value
    for power_w, bound_w in readings:
        assert abs(power_w - 250.0) <= bound_w + 1e-9
    s_va = 250.0 / MAINS.power_factor
    datasheet_w = physics.power_uncertainty_w(250.0, s_va, FIXED_300V_2A.power_range_w)
    assert abs(statistics.fmean(powers) - 250.0) <= datasheet_w
    assert statistics.pstdev(powers) > 0.01  # the error is really applied
    assert d.execute(":STAT:ERR?") == b'0,"No error"'


@settings(max_examples=200, deadline=None)
@given(true_power_w=st.floats(5.0, 590.0), seed=st.integers(0, 2**32))
def test_every_reading_lies_within_its_bound_and_on_the_resolution_grid(true_power_w: float, seed: int) -> None:
    r = physics.reading(true_power_w, FIXED_300V_2A, MAINS, random.Random(seed))
    assert abs(r.power_w - true_power_w) <= r.uncertainty_w + 1e-9
    step = physics.resolution(FIXED_300V_2A.power_range_w)
    assert abs(r.power_w / step - round(r.power_w / step)) < 1e-6


def test_resolution_is_five_digits_relative_to_range() -> None:
    assert physics.resolution(300.0) == 0.01  # 247.92 V
    assert math.isclose(physics.resolution(0.5), 1e-5)  # 198.11 mA
    assert math.isclose(physics.resolution(0.05), 1e-6)  # 64.124 mA
    assert physics.resolution(150.0) == 0.01  # 23.85 W
    assert math.isclose(physics.resolution(15.0), 1e-3)  # 8.163 W


def test_same_seed_same_readings_other_seed_other_readings() -> None:
    a = [physics.reading(250, FIXED_300V_2A, MAINS, random.Random(f"1:{k}")) for k in range(5)]
    b = [physics.reading(250, FIXED_300V_2A, MAINS, random.Random(f"1:{k}")) for k in range(5)]
    c = [physics.reading(250, FIXED_300V_2A, MAINS, random.Random(f"2:{k}")) for k in range(5)]
    assert a == b and a != c


def test_overrange_above_140_percent_reads_inf_and_sets_ovr1() -> None:
    inst, d, _ = _instrument("constant:1500")  # 6.9 A on a fixed 2 A range
    d.execute(":COMM:HEAD OFF;:INP:CURR:RANG 2A;:INP:VOLT:RANG 300V;:STAT:FILT7 RISE;:STAT:FILT1 FALL")
    d.execute(":STAT:EESR?;:COMM:WAIT 1")
    values = d.execute(":NUM:NORM:VAL?").decode().split(",")
    assert values[1] == "INF" and values[2] == "INF" and values[5] == "NAN"  # I, P overrange; PF error
    assert float(values[0]) > 200  # the voltage is fine
    assert int(d.execute(":STAT:EESR?")) & (1 << 6)


def test_at_the_140_percent_edge_the_reading_is_still_valid() -> None:
    # 1.38 x 2 A = 2.76 A is under the 140 % limit: a value, not overrange.
    r = physics.reading(2.76 * 230 * 0.95, FIXED_300V_2A, physics.Mains(voltage_noise_v=0.0), random.Random(0))
    assert math.isfinite(r.current_a) and not r.overrange


def test_signal_under_half_a_percent_of_range_reads_zero_and_pf_error() -> None:
    r = physics.reading(10.0, physics.Ranges(300.0, 20.0), MAINS, random.Random(0))  # 46 mA on 20 A
    assert r.current_a == 0.0 and r.power_w == 0.0 and math.isnan(r.power_factor) and r.below_floor


def test_peaky_current_is_clipped_and_under_reported() -> None:
    dirty = physics.Mains(current_crest_factor=6.0, power_factor=0.5, voltage_noise_v=0.0)
    r = physics.reading(50.0, physics.Ranges(300.0, 0.5), dirty, random.Random(0))  # peak 5.2 x range
    assert r.current_peak_over and not r.overrange and r.power_w < 45.0 and math.isfinite(r.power_w)


def test_auto_range_rules() -> None:
    amps = physics.CURRENT_RANGES_A["3"]
    assert physics.auto_range(2.7, 3.8, 2.0, amps, "3") == 5.0  # > 130 %: one range up
    assert physics.auto_range(6.9, 9.8, 0.5, amps, "3") == 10.0  # peak over: jump to the range that holds it
    assert physics.auto_range(0.5, 0.7, 2.0, amps, "3") == 1.0  # <= 30 % and fits below: one down
    assert physics.auto_range(0.7, 1.0, 2.0, amps, "3") == 2.0  # 35 %: stays


def test_auto_range_step_50_to_1500_w_shows_switch_gap_and_new_range_over_tcp() -> None:
    with start_simulator(port=0, load="constant:50", clock=VirtualClock(), seed=1) as sim:
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
            f = sock.makefile("rb")

            def ask(line: str) -> str:
                sock.sendall(line.encode() + b"\n")
                return f.readline().decode().strip()

            sock.sendall(b":COMM:HEAD OFF;:NUM:NORM:NUM 3;:NUM:NORM:ITEM1 U;ITEM2 I;ITEM3 P;:STAT:FILT1 FALL\n")

            def next_update() -> str:
                ask(":STAT:EESR?")
                sock.sendall(b":COMM:WAIT 1\n")
                return ask(":NUM:NORM:VAL?")

            for _ in range(8):  # let auto range settle on the 50 W load
                next_update()
            before_range = float(ask(":INP:CURR:RANG?"))
            steady = next_update().split(",")
            assert before_range == 0.5 and abs(float(steady[2]) - 50.0) < 0.5
            sim.set_load("constant:1500")
            gap = next_update().split(",")
            assert gap[1] == "NAN" and gap[2] == "NAN" and gap[0] != "NAN"  # no current measured while switching
            after = next_update().split(",")
            assert float(ask(":INP:CURR:RANG?")) == 10.0
            assert ask(":INP:CURR:AUTO?") == "1"
            assert abs(float(after[2]) - 1500.0) < 5.0


def test_readings_are_frozen_between_updates() -> None:
    inst, d, clock = _instrument()
    d.execute(":COMM:HEAD OFF")
    first = d.execute(":NUM:NORM:VAL?")
    clock.advance(0.4)
    assert d.execute(":NUM:NORM:VAL?") == first
    clock.advance(0.7)
    assert d.execute(":NUM:NORM:VAL?") != first


def test_integration_is_the_sum_of_the_readings() -> None:
    inst, d, clock = _instrument("profile:100:400:2:3:4")
    d.execute(":COMM:HEAD OFF;:INP:VOLT:RANG 300V;:INP:CURR:RANG 5A;:RATE 500MS;:INTEG:START")
    powers = []
    for _ in range(30):
        clock.advance(0.5)
        powers.append(inst.advance().power_w)
    d.execute(":INTEG:STOP")
    d.execute(":NUM:NORM:NUM 2;:NUM:NORM:ITEM1 WH;ITEM2 TIME")
    wh, elapsed = (float(v) for v in d.execute(":NUM:NORM:VAL?").split(b","))
    assert math.isclose(wh, sum(powers) * 0.5 / 3600, rel_tol=1e-4)
    assert elapsed == 15.0
    assert d.execute(":INTEG:STATE?") == b"STOP"


def test_integration_timer_ends_in_timeup() -> None:
    inst, d, clock = _instrument()
    d.execute(":COMM:HEAD OFF;:INTEG:TIMER 0,0,3;:INTEG:START")
    clock.advance(5.0)
    assert d.execute(":INTEG:STATE?") == b"TIM"  # verbose OFF abbreviates
    d.execute(":COMM:VERB ON")
    assert d.execute(":INTEG:STATE?") == b"TIMEUP"


def test_low_current_range_protection_forces_1a_and_auto_on() -> None:
    inst, d, clock = _instrument("constant:100")  # 0.46 A on the 200 mA range
    d.execute(":COMM:HEAD OFF;:INP:CURR:RANG 200MA")
    assert d.execute(":INP:CURR:AUTO?") == b"0"
    clock.advance(3.5)
    assert d.execute(":INP:CURR:RANG?;AUTO?") == b"1.000E+00;1"


def test_a_commanded_range_change_can_cost_settling_updates() -> None:
    inst, d, clock = _instrument("constant:250", fixed_range_settle_updates=2)
    d.execute(":COMM:HEAD OFF;:NUM:NORM:NUM 3;:NUM:NORM:ITEM1 U;ITEM2 I;ITEM3 P")
    clock.advance(1.0)
    assert b"NAN" not in d.execute(":NUM:NORM:VAL?")
    d.execute(":INP:CURR:RANG 5A")
    for _ in range(2):
        clock.advance(1.0)
        u, i, p = d.execute(":NUM:NORM:VAL?").split(b",")
        assert (i, p) == (b"NAN", b"NAN") and u != b"NAN"
    clock.advance(1.0)
    assert b"NAN" not in d.execute(":NUM:NORM:VAL?")
