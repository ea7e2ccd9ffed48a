"""The agent's CLI in client mode against the director's power-dev server, the simulator as analyzer."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpower.sut_agent.loadgen_logs import read_result

from .test_powerdev_client import LAYOUT

pytestmark = pytest.mark.slow


@pytest.fixture
def director_port(tmp_path: Path) -> Iterator[int]:
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
        director = director_module.Director(settings)
        server = server_module.PowerDevServer(director.powerdev_factory, host="127.0.0.1", port=0).start()
        try:
            yield server.port
        finally:
            server.stop()


def test_client_session_against_the_director(director_port: int, tmp_path: Path) -> None:
    out = tmp_path / "agent"
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
