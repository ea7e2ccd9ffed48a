"""The agent's CLI in client mode against the director's power-dev server, the simulator as analyzer."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlpower.sut_agent.loadgen_logs import read_result
from mlpower.testing import wait_for

from tests.reliability.procs import pid_alive, start_ticks

from .test_powerdev_client import LAYOUT

pytestmark = pytest.mark.slow


@pytest.fixture
def director_server(tmp_path: Path) -> Iterator[object]:
    simulator_module = pytest.importorskip("mlpower.analyzer_sim.simulator")
    director_module = pytest.importorskip("mlpower.director.director")
    server_module = pytest.importorskip("mlpower.director.powerdev_server")
    from mlpower.director.settings import DirectorSettings
    from mlpower.settings import load_settings

    with simulator_module.start_simulator(port=0, load="constant:250") as simulator:
        settings = load_settings(
            DirectorSettings, analyzer=f"TCPIP0::127.0.0.1::{simulator.port}::SOCKET", host="127.0.0.1",
            powerdev_port=0, http_port=0, results_dir=tmp_path / "director", analyzer_sleep_s=0.5,
            sample_interval_s=0.25, bus_mode=False)
        server = server_module.PowerDevServer(director_module.Director(settings),
                                              host="127.0.0.1", port=0).start()
        try:
            yield server
        finally:
            server.stop()


def test_client_session_against_the_director(director_server: Any, tmp_path: Path) -> None:
    out = tmp_path / "agent"
    director_port = director_server.port
    done = subprocess.run(
        [sys.executable, "-m", "mlpower.sut_agent", "--server", f"127.0.0.1:{director_port}", "--workload",
         "builtin:offline", "--out", str(out), "--label", "e2e", "--duration-s", "2"],
        capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    (session,) = [p for p in out.iterdir() if p.name != "loadgen_logs"]
    files = sorted(p.relative_to(session).as_posix() for p in session.rglob("*") if p.is_file())
    assert files == LAYOUT
    client = json.loads((session / "power" / "client.json").read_text())
    server = json.loads((session / "power" / "server.json").read_text())
    assert client["uuid"] == server["uuid"]
    assert client["session_name"] == server["session_name"] == session.name and session.name.endswith("_e2e")
    assert [m["cmd"] for m in client["messages"]] == [m["cmd"] for m in server["messages"]]
    # The power window LoadGen logged lies inside the testing phase the director recorded (Go .. stop).
    window = read_result(session / "run_1").window
    server_testing = [point[0] for point in server["phases"]["testing"]]
    assert server_testing[1] < window.begin_utc_s < window.end_utc_s < server_testing[2]
    assert client["mlpower"]["compliant_durations"] is False
    assert any(line.startswith("Time,") for line in (session / "run_1" / "spl.txt").read_text().splitlines())
    assert f"session {session.name}" in done.stdout


def test_director_lost_mid_workload_fails_the_agent_and_the_session(director_server: Any, tmp_path: Path) -> None:
    from mlpower.sut_agent.errors import ConnectionLost
    from mlpower.sut_agent.powerdev_client import ClientOptions, run_client_session
    from mlpower.sut_agent.workloads import parse_workload

    events: list[Any] = []
    out = tmp_path / "agent"
    # Stop the director once the ranging workload is running.
    def stop_director() -> None:
        wait_for(lambda: any(e.state == "started" for e in events), 30, what="the ranging workload")
        wait_for(lambda: director_server.session.readings("ranging"), 30, what="the director measuring")
        director_server.stop()

    stopper = threading.Thread(target=stop_director)
    stopper.start()
    started = time.monotonic()
    with pytest.raises(ConnectionLost, match="ranging workload"):
        run_client_session(ClientOptions(host="127.0.0.1", port=director_server.port, out_dir=out, duration_s=1),
                           parse_workload("sleep 60"), events.append)
    stopper.join()
    assert time.monotonic() - started < 30
    assert [e.state for e in events] == ["started", "failed"]
    assert director_server.session is not None and director_server.session.ended


def test_agent_terminated_mid_workload_aborts_the_director_session(director_server: Any, tmp_path: Path) -> None:
    out = tmp_path / "agent"
    agent = subprocess.Popen(
        [sys.executable, "-m", "mlpower.sut_agent", "--server", f"127.0.0.1:{director_server.port}", "--workload",
         "echo $$ > {log_dir}/shell.pid; sleep 60", "--out", str(out), "--duration-s", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(out.glob("loadgen_logs/*/ranging/shell.pid")), 30, what="the workload's shell")
        pid_file = next(out.glob("loadgen_logs/*/ranging/shell.pid"))
        wait_for(lambda: pid_file.read_text().strip() != "", 30, what="the shell's pid")
        shell_pid = int(pid_file.read_text())
        shell_started = start_ticks(shell_pid)
        assert shell_started is not None and pid_alive(shell_pid, shell_started)
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 130, stderr[-2000:]
    wait_for(lambda: director_server.session is not None and director_server.session.ended, 30,
             what="the director's session to end")
    assert director_server.session.status_reason == "client disconnected"
    # The workload's shell was stopped with the agent. It may linger as a zombie: dead, waiting for
    # whoever it was handed to to read its status (an init that does not reap, in some containers).
    assert not pid_alive(shell_pid, shell_started)  # that process: its pid may since name another
