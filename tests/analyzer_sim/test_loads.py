"""Load models and their spec strings."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlpower.analyzer_sim.errors import LoadSpecError
from mlpower.analyzer_sim.loads import FollowLoad, PhaseProfile, SwitchableLoad, TraceLoad, parse_load


def test_constant() -> None:
    assert parse_load("constant:250").power_w(123.0) == 250.0


def test_profile_idle_ramp_steady_ramp_down_repeats() -> None:
    p = parse_load("profile:100:400:10:5:20")
    assert isinstance(p, PhaseProfile)
    assert p.power_w(5) == 100 and p.power_w(12.5) == 250 and p.power_w(20) == 400
    assert p.power_w(37.5) == 250 and p.power_w(45) == 100
    assert p.power_w(5 + 50) == p.power_w(5)  # period 2*10 + 2*5 + 20 = 50 s


def test_trace_replay_scales_and_offsets_the_h200_board_power(trace_csv: Path) -> None:
    raw = parse_load(f"trace:{trace_csv}")
    wall = parse_load(f"trace:{trace_csv}:1.2:150")
    assert isinstance(raw, TraceLoad) and 55 < raw.duration_s < 70
    assert 60 < raw.power_w(0.0) < 100  # idle0: about 77 W of instantaneous board power
    assert max(raw.power_w(t / 2) for t in range(2 * 8, 2 * 23)) > 500  # the matmul phase
    for t_s in (0.0, 12.0, 40.0):
        assert wall.power_w(t_s) == pytest.approx(raw.power_w(t_s) * 1.2 + 150)
    assert raw.power_w(raw.duration_s + 1.0) == raw.power_w(1.0)  # looped


def test_trace_with_a_plain_power_w_column(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("t_s,power_w\n0,10\n1,20\n2,30\n")
    load = parse_load(f"trace:{csv}:2")
    assert load.power_w(1.5) == 40.0


@pytest.mark.parametrize("spec", ["constant", "constant:abc", "profile:1", "trace:", "trace:/nonexistent.csv",
                                  "banana:3", "follow:1"])
def test_bad_specs_say_what_is_wrong(spec: str) -> None:
    with pytest.raises(LoadSpecError):
        parse_load(spec)


def test_trace_without_the_needed_columns(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(LoadSpecError, match="time column"):
        parse_load(f"trace:{csv}")


def test_follow_switches_on_workload_states() -> None:
    f = parse_load("follow:100:400")
    assert isinstance(f, FollowLoad) and f.power_w(0) == 100
    for state, watts in (("started", 400), ("power_begin", 400), ("power_end", 100), ("started", 400),
                         ("failed", 100), ("power_begin", 400), ("finished", 100)):
        f.on_phase(state)
        assert f.power_w(0) == watts, state


def test_switchable_load_swaps_models() -> None:
    s = SwitchableLoad(parse_load("constant:1"))
    s.set_load("constant:2")
    assert s.power_w(0) == 2 and s.spec == "constant:2"
