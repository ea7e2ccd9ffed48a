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
    load = parse_load("trace:t.csv:2", tmp_path)
    assert load.power_w(1.5) == 40.0
    assert parse_load(f"trace:{csv}:2", tmp_path).power_w(1.5) == 40.0  # absolute, inside the folder
    switchable = SwitchableLoad(parse_load("constant:1"), traces_dir=tmp_path)
    assert switchable.set_load("trace:t.csv").power_w(0.5) == 10.0


@pytest.mark.parametrize("spec", ["constant", "constant:abc", "profile:1", "trace:", "trace:/nonexistent.csv",
                                  "banana:3", "follow:1", "constant:nan", "constant:inf", "constant:-inf",
                                  "constant:1e400", "profile:100:nan", "profile:1:2:3:inf:5", "follow:nan:400",
                                  "follow:100:Infinity", "trace:h200_nvml_trace.csv:nan",
                                  "trace:h200_nvml_trace.csv:1:inf", "constant:2e9"])
def test_bad_specs_say_what_is_wrong(spec: str) -> None:
    with pytest.raises(LoadSpecError, match=r"^(load spec|trace) "):
        parse_load(spec)


def test_trace_without_the_needed_columns_names_the_file_not_its_header(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("secret_a,secret_b\n1,2\n3,4\n")
    with pytest.raises(LoadSpecError, match="time column") as raised:
        parse_load("trace:t.csv", tmp_path)
    assert "secret" not in str(raised.value) and "t.csv" in str(raised.value)


@pytest.mark.parametrize("content", [b"t_s,power_w\n0,root:x:0:0\n", b"t_s,power_w\n0,nan\n1,2\n",
                                     b"t_s,power_w\ninf,1\n1,2\n", b"\xff\xfeSECRET\n", b"t_s,power_w\n0,1\x00SECRET\n",
                                     b"SECRET-header-only\n", b"t_s,power_w\n0,SECRET\n"])
def test_trace_errors_never_quote_the_file(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_bytes(content)
    with pytest.raises(LoadSpecError) as raised:
        parse_load("trace:bad.csv", tmp_path)
    message = str(raised.value)
    assert "bad.csv" in message
    for fragment in ("SECRET", "root:x", "nan'", "inf'"):
        assert fragment not in message, message


def test_traces_come_only_from_the_traces_folder(tmp_path: Path) -> None:
    traces, outside = tmp_path / "traces", tmp_path / "outside"
    traces.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text("t_s,power_w\n0,SECRET\n1,2\n")
    (traces / "ok.csv").write_text("t_s,power_w\n0,1\n1,2\n")
    (traces / "sub").mkdir()
    (traces / "sub" / "ok.csv").write_text("t_s,power_w\n0,1\n1,2\n")
    (traces / "link.csv").symlink_to(outside / "secret.csv")
    (traces / "linkdir").symlink_to(outside)
    (traces / "inner-link.csv").symlink_to(traces / "ok.csv")  # even one that stays inside: links are not followed
    assert parse_load("trace:sub/ok.csv", traces).power_w(0) == 1.0
    for name in ("../outside/secret.csv", str(outside / "secret.csv"), "link.csv", "linkdir/secret.csv",
                 "inner-link.csv", "/etc/passwd", "/etc/shadow", "/proc/self/environ", "sub/../ok.csv",
                 "sub", ".", "nothing.csv", "ok.csv\x00", f"{traces}/../outside/secret.csv"):
        with pytest.raises(LoadSpecError) as raised:
            parse_load(f"trace:{name}", traces)
        assert "SECRET" not in str(raised.value) and "root:" not in str(raised.value), name


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
