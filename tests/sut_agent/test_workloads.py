"""Workloads: the built-in LoadGen runs in each scenario, command workloads, and their failures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from mlpower.sut_agent import loadgen_logs, loadgen_runner
from mlpower.sut_agent.errors import LoadGenLogError, WorkloadError, WorkloadFailed
from mlpower.sut_agent.loadgen_logs import mllog_values
from mlpower.sut_agent.loadgen_runner import Calibration
from mlpower.sut_agent.runner import run_phase
from mlpower.sut_agent.workloads import BUILTIN_WORKLOADS, cuda_available, parse_workload

from .conftest import Events

SHORT_S = 1.5
RUNNER = f"{sys.executable} -m mlpower.sut_agent.loadgen_runner"


@pytest.mark.parametrize("scenario, logged_name", [
    ("offline", "Offline"), ("server", "Server"), ("singlestream", "SingleStream")])
def test_builtin_loadgen_run_in_each_scenario(tmp_path: Path, events: Events, scenario: str, logged_name: str) -> None:
    outcome = run_phase(parse_workload(f"builtin:{scenario}"), "testing", tmp_path, run_id="r1", sut="s1",
                        duration_s=SHORT_S, publish=events.append)
    result = outcome.result
    assert (tmp_path / "mlperf_log_detail.txt").is_file() and (tmp_path / "mlperf_log_summary.txt").is_file()
    assert result.scenario == logged_name
    assert result.validity in ("VALID", "INVALID") and result.metric_value is not None and result.metric_value > 0
    # The window LoadGen logged (in UTC thanks to TZ=UTC) lies inside the workload's run.
    assert outcome.started_utc_s < result.window.begin_utc_s < result.window.end_utc_s < outcome.finished_utc_s
    # How long LoadGen ran depends on how busy the machine is; what it says about it does not: the
    # asked minimum was in effect, and a VALID result met it inside the logged window (1 ms: log resolution).
    assert result.min_duration_ms == SHORT_S * 1000
    if result.validity == "VALID":
        assert result.window.duration_s >= SHORT_S - 0.002
    assert outcome.compliant_durations is False  # a 1.5 s run is a demo, not a compliant run
    assert events.states() == ["started", "power_begin", "power_end", "finished"]
    assert events[1].t_utc_s == result.window.begin_utc_s and events[2].t_utc_s == result.window.end_utc_s
    assert {e.mode for e in events} == {"testing"} and {e.run_id for e in events} == {"r1"}
    finished = json.loads(events[3].detail)
    assert finished["compliant_durations"] is False and finished["loadgen"]["scenario"] == logged_name


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs torch with a CUDA device")
def test_builtin_gpu_variant(tmp_path: Path) -> None:
    outcome = run_phase(parse_workload("builtin:offline:cuda"), "testing", tmp_path, run_id="g", sut="s",
                        duration_s=SHORT_S)
    assert outcome.result.scenario == "Offline" and outcome.result.metric_value


def test_command_workload_gets_the_log_folder_and_utc(tmp_path: Path, events: Events) -> None:
    command = (f"test \"$MLPOWER_LOADGEN_LOG_DIR\" = {{log_dir}} && "
               f"{RUNNER} --scenario singlestream --out {{log_dir}} --duration-ms 500")
    outcome = run_phase(parse_workload(command), "ranging", tmp_path / "logs dir", run_id="r", sut="s",
                        duration_s=0.5, publish=events.append)
    assert outcome.result.scenario == "SingleStream"
    assert outcome.log_dir == tmp_path / "logs dir"
    assert events.states() == ["started", "power_begin", "power_end", "finished"]


def test_non_zero_exit_keeps_code_and_stderr_tail(tmp_path: Path, events: Events) -> None:
    command = "for i in $(seq 1 50); do echo line $i >&2; done; echo the real cause >&2; exit 3"
    with pytest.raises(WorkloadFailed) as caught:
        run_phase(parse_workload(command), "testing", tmp_path, run_id="r", sut="s", duration_s=1,
                  publish=events.append)
    assert caught.value.exit_code == 3
    assert caught.value.stderr_tail.endswith("the real cause") and "line 1\n" not in caught.value.stderr_tail
    assert "status 3" in str(caught.value)
    assert events.states() == ["started", "failed"]
    detail = json.loads(events[1].detail)
    assert detail["exit_code"] == 3 and "the real cause" in detail["stderr_tail"]


def test_logs_without_power_markers_name_the_file(tmp_path: Path, events: Events) -> None:
    command = ("echo ':::MLLOG {\"key\": \"effective_scenario\", \"value\": \"Offline\"}' "
               "> {log_dir}/mlperf_log_detail.txt; echo 'Result is : VALID' > {log_dir}/mlperf_log_summary.txt")
    with pytest.raises(LoadGenLogError, match=r"mlperf_log_detail\.txt: no readable power_begin and power_end"):
        run_phase(parse_workload(command), "testing", tmp_path, run_id="r", sut="s", duration_s=1,
                  publish=events.append)
    assert events.states() == ["started", "failed"]
    assert str(tmp_path / "mlperf_log_detail.txt") in events[1].detail


def test_a_command_that_writes_no_logs(tmp_path: Path) -> None:
    with pytest.raises(LoadGenLogError, match="directory containing loadgen logs"):
        run_phase(parse_workload("true"), "testing", tmp_path, run_id="r", sut="s", duration_s=1)


def test_timeout_stops_the_whole_process_group(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(WorkloadError, match="timeout"):
        run_phase(parse_workload("sleep 30 & sleep 30; wait"), "testing", tmp_path, run_id="r", sut="s",
                  duration_s=1, timeout_s=0.5)
    assert time.monotonic() - started < 10


def test_unknown_builtin_lists_the_known_ones() -> None:
    with pytest.raises(WorkloadError, match="builtin:singlestream"):
        parse_workload("builtin:multistream")
    assert set(BUILTIN_WORKLOADS) >= {"builtin:offline", "builtin:server", "builtin:singlestream"}


def test_runner_refuses_a_local_time_zone(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mlpower.sut_agent.loadgen_runner", "--scenario", "offline",
                           "--out", str(tmp_path), "--duration-ms", "100"],
                          env={"PATH": "/usr/bin:/bin", "TZ": "Europe/Paris"}, capture_output=True, text=True)
    assert done.returncode == 2 and "TZ must be UTC" in done.stderr
    assert not (tmp_path / "mlperf_log_detail.txt").exists()


@pytest.mark.parametrize("scenario, understate", [
    ("offline", lambda cal: replace(cal, batch_throughput_per_s=cal.batch_throughput_per_s / 30)),
    ("singlestream", lambda cal: replace(cal, single_latency_s=cal.single_latency_s * 30))])
def test_a_run_cut_short_by_a_busy_calibration_is_run_again_sized_from_loadgen(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scenario: str,
        understate: Callable[[Calibration], Calibration]) -> None:
    # A calibration taken while other processes held the CPUs understates the rate: here 30 times,
    # so that LoadGen's first run is certain to end before min_duration.
    loadgen_runner.run(scenario, tmp_path, 1000, calibrate_with=lambda p, i: understate(loadgen_runner.calibrate(p, i)))
    said = capsys.readouterr().err
    assert "run 1 ended before min_duration_ms=1000" in said and "running again" in said
    # What the repeat promises is the duration: LoadGen may still call a run on a busy machine INVALID
    # for another reason (SingleStream's early stopping wants more queries than a slowed second may hold).
    values = mllog_values((tmp_path / "mlperf_log_detail.txt").read_text())
    assert values["result_min_duration_met"] is True
    assert loadgen_logs.read_result(tmp_path).window.duration_s >= 1.0 - 0.002  # 1 ms: the log's resolution
