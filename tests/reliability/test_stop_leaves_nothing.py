"""Stop means stop: nothing of a lab runs on after it was told to stop.

* ``mlpower lab up`` (every service as a real process, the real broker), a bus-mode run whose
  workload would last two minutes, then ``mlpower lab down`` in the middle of testing: every
  process of the lab's tree seen during the run (the services, the agent's LoadGen workload in
  its own session, anything they started) is gone afterwards.
* Client mode (``mlpower agent --server``): the agent stopped with SIGTERM mid-phase, and the
  director vanishing mid-phase (the power-dev session fails), each end the workload too.
"""

from __future__ import annotations

import json
import secrets
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpower.lab import credentials
from mlpower.lab import procs as lab_procs
from mlpower.lab.local_lab import lab_down, lab_up
from mlpower.lab.settings import LabSettings
from mlpower.settings import load_settings

from tests.ports import free_port_offset
from tests.reliability.ledger import LEDGER
from tests.reliability.procs import (
    Proc,
    descendants,
    director_env,
    left_alive,
    sim_resource,
    simulator,
    snapshot,
    start_agent,
    start_director,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

LOADGEN = "mlpower.sut_agent.loadgen_runner"


def workloads_below(roots: set[int]) -> set[int]:
    return {pid for pid in descendants(roots) if LOADGEN in _cmdline(pid)}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


@pytest.fixture
def lab_env(tmp_path: Path, amqp_url: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    workdir = tmp_path / "lab"
    monkeypatch.setenv("MLPOWER_LAB_DIR", str(workdir))
    monkeypatch.setenv("AMQP_URL", amqp_url)
    monkeypatch.setenv("MLPOWER_LAB", f"lab{unique}")
    monkeypatch.setenv("MLPOWER_SUT", f"sut{unique}")
    monkeypatch.setenv("MLPOWER_AGENT_DURATION_S", "120")  # the workload outlives the test unless stopped
    monkeypatch.setenv("MLPOWER_ANALYZER_SLEEP_S", "0.3")
    monkeypatch.setenv("MLPOWER_LAB_PORT_OFFSET", str(free_port_offset()))
    monkeypatch.setenv("RABBITMQ_PASSWORD", secrets.token_urlsafe(32))
    monkeypatch.setenv("MLPOWER_API_TOKEN", secrets.token_urlsafe(32))
    try:
        yield workdir
    finally:
        if lab_procs.load_state(workdir):
            list(lab_down())


def test_lab_down_during_a_run_leaves_no_process_behind(lab_env: Path) -> None:
    lines = list(lab_up())
    assert lines[-1].startswith("lab up: 5 services"), lines
    settings = load_settings(LabSettings)
    services = {s.name: s.pid for s in lab_procs.load_state(lab_env)}
    token = credentials.read_secret(credentials.secrets_folder(lab_env) / credentials.TOKEN_FILE)
    request = urllib.request.Request(f"{settings.director_url}/runs", method="POST",
                                     data=json.dumps({"workload": "builtin:offline", "scenario": "Offline"}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
    roots = set(services.values())
    workload = wait_until(lambda: workloads_below({services["sut-agent"]}), 60, "the agent to start LoadGen")
    seen = snapshot(roots | descendants(roots))
    assert workload <= set(seen), "the workload is part of the lab's tree"

    LEDGER.fault("lab down during a run")
    stopped = list(lab_down())
    assert all(line.endswith(("stopped", "deleted")) for line in stopped), stopped
    left = left_alive(seen)
    assert left == [], "processes left behind by lab down:\n" + "\n".join(left)


@pytest.fixture
def client_lab(tmp_path: Path, amqp_url: str, unique: str) -> Iterator[tuple[Proc, Path]]:
    logs = tmp_path / "logs"
    with simulator(logs) as sim:
        env = director_env(analyzer=sim_resource(sim), results=tmp_path / "results", amqp_url=amqp_url,
                           lab=f"lab{unique}", MLPOWER_DIRECTOR_BUS_MODE="false")
        director = start_director(env, logs)
        try:
            yield director, logs
        finally:
            director.stop()


def _client_workload(agent: Proc) -> set[int]:
    found: set[int] = wait_until(lambda: workloads_below({agent.pid}), 60, "the client agent to start LoadGen")
    return found


@pytest.mark.parametrize("stop", ["agent SIGTERM", "director gone"])
def test_a_stopped_client_session_stops_its_workload(client_lab: tuple[Proc, Path], tmp_path: Path, stop: str) -> None:
    director, logs = client_lab
    agent = start_agent(int(director.info["powerdev"]), tmp_path / "client", logs, duration_s=120, label="stopped")
    try:
        workload = _client_workload(agent)
        seen = snapshot({agent.pid} | descendants({agent.pid}))
        assert workload <= set(seen)
        LEDGER.fault(f"client mode: {stop}")
        if stop == "agent SIGTERM":
            agent.popen.send_signal(signal.SIGTERM)  # the agent alone, as `kill PID` would
        else:
            director.kill(signal.SIGKILL)
        code = agent.wait(30)
        assert code is not None and code != 0, "the agent ends its failed session"
        left = left_alive(seen)
        assert left == [], f"{stop}: processes left behind:\n" + "\n".join(left)
        if stop == "director gone":
            assert "power-dev server closed the connection" in agent.log() or "lost" in agent.log(), \
                agent.log()[-2000:]
    finally:
        agent.stop()
