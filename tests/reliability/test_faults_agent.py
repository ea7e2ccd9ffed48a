"""Fault: the SUT agent is killed (SIGKILL to its process group) in the middle of a run.

Client mode: a real ``mlpower agent --server`` against a real ``mlpower director``; the agent's
socket dies with it, so the director aborts the session (power-dev's "client disconnected").
Bus mode: a real ``mlpower agent --bus``; nothing closes, so the director notices the missing
heartbeats and fails the run within 3 heartbeat intervals, naming the agent (not at
``MLPOWER_PHASE_TIMEOUT_S``); the workload the agent ran dies with it (no orphan at 99 % CPU).
Either way the session's files stay (documents.jsonl ending in the run.stop, samples.parquet with
every sample of the documents, server.json saying how it ended) and the director takes the next
session at once.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from mlpower.director.bus_edge import events_queue as director_events_queue
from mlpower.rabbitmq import RabbitMQBus
from mlpower.schema import RunStop

from tests.reliability.collect import RunCollector, file_documents, page_samples
from tests.reliability.ledger import LEDGER
from tests.reliability.procs import (
    Proc,
    check_no_crash,
    director_env,
    director_url,
    http,
    pid_alive,
    sim_resource,
    simulator,
    start_director,
    start_mlpower,
    wait_until,
)
from tests.reliability.procs import start_agent as start_client_agent

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]


def _running(director: Proc, mode: str) -> dict[str, Any] | None:
    status, found = http("GET", director_url(director, "/status"))
    run = found.get("run") if status == 200 and isinstance(found, dict) else None
    return run if run and run["state"] == mode and found["busy"] else None


def _check_aborted_run_kept(run_dir: Path, collector: RunCollector, run_id: str, reason: str,
                            status: str = "aborted") -> None:
    written = file_documents(run_dir)
    stop = written[-1]
    assert isinstance(stop, RunStop) and stop.status == status and reason in stop.reason, stop
    samples = page_samples(written)
    assert samples == stop.samples > 0
    assert pl.read_parquet(run_dir / "samples.parquet").height == samples
    summary = (run_dir / "power" / "server.json").read_text(encoding="utf-8")
    assert f'"status": "{status}"' in summary
    assert (run_dir / "ranging" / "spl.txt").stat().st_size > 0
    got = collector.wait_all(run_id, len(written), timeout_s=10)
    assert sorted(got) == [d.seq for d in written]
    LEDGER.samples(samples, page_samples(got.values()))


def test_agent_killed_in_client_mode_aborts_the_session_and_the_next_one_completes(
        amqp_url: str, tmp_path: Path, unique: str) -> None:
    lab, logs = f"lab{unique}", tmp_path / "logs"
    bus = RabbitMQBus(amqp_url, client_name="fault-agent")
    collector = RunCollector(bus, lab).start()
    try:
        with simulator(logs) as sim:
            env = director_env(analyzer=sim_resource(sim), results=tmp_path / "results", amqp_url=amqp_url, lab=lab)
            director = start_director(env, logs)
            agents: list[Proc] = []
            try:
                port = int(director.info["powerdev"])
                agent = start_client_agent(port, tmp_path / "client", logs, duration_s=1.5, label="killed")
                agents.append(agent)
                run = wait_until(lambda: _running(director, "testing"), 30, "the agent's session to reach testing")
                time.sleep(0.5)  # a duration under test: the kill lands inside the phase, samples already taken
                LEDGER.fault("sut agent killed (client mode)")
                killed = time.monotonic()
                agent.kill(signal.SIGKILL)
                assert agent.wait(5) == -signal.SIGKILL
                completed = collector.wait_stopped(run["run_id"], timeout_s=15)
                assert completed.status == "aborted" and "client disconnected" in completed.reason, completed
                assert time.monotonic() - killed < 10
                _check_aborted_run_kept(Path(completed.output_dir), collector, run["run_id"], "client disconnected")

                second = start_client_agent(port, tmp_path / "client", logs, duration_s=1.0, label="second",
                                            name="agent2")
                agents.append(second)
                assert second.wait(60) == 0, second.log()[-3000:]
                ended = [c for c in collector.stopped.values() if c.run_id != run["run_id"]]
                assert len(ended) == 1 and ended[0].status == "success", ended
            finally:
                for started in agents:
                    started.stop()
                director.stop()
            check_no_crash(director, second)
    finally:
        collector.close()
        bus.close()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def test_agent_killed_in_bus_mode_fails_the_run_within_three_heartbeats(amqp_url: str, tmp_path: Path,
                                                                       unique: str) -> None:
    lab, sut, logs = f"lab{unique}", f"sut{unique}", tmp_path / "logs"
    bus = RabbitMQBus(amqp_url, client_name="fault-agent-bus")
    collector = RunCollector(bus, lab).start()
    try:
        with simulator(logs) as sim:
            # the default heartbeat (2 s, so 6 s of silence) and an hour's phase timeout, as deployed
            env = director_env(analyzer=sim_resource(sim), results=tmp_path / "results", amqp_url=amqp_url, lab=lab,
                               sut=sut)
            director = start_director(env, logs)
            agent_env = {"AMQP_URL": amqp_url, "MLPOWER_LAB": lab, "MLPOWER_SUT": sut,
                         "MLPOWER_AGENT_SERVER": f"127.0.0.1:{director.info['powerdev']}",
                         "MLPOWER_AGENT_ALLOW_CLOCK_OFFSET": "true", "MLPOWER_RESULTS_DIR": str(tmp_path / "agent"),
                         "MLPOWER_AGENT_DURATION_S": "60", "MLPOWER_AGENT_HTTP_PORT": "0"}
            agents: list[Proc] = []
            try:
                agents.append(start_mlpower("agent-bus", ["agent", "--bus"], env=agent_env, log_dir=logs,
                                            ready=r"listening on mlpower\.[^.]+\.agent-"))
                status, accepted = http("POST", director_url(director, "/runs"),
                                        {"workload": "builtin:offline", "sample_interval_s": 0.1})
                assert status == 202 and accepted["via"] == "agent", accepted
                run_id = accepted["run_id"]
                wait_until(lambda: _running(director, "ranging"), 30, "the bus-mode run to start ranging")
                workload = wait_until(lambda: _children(agents[0].pid), 30, "the agent to start the workload")
                assert len(workload) == 1, workload
                time.sleep(0.5)  # a duration under test: the kill lands while the workload runs
                LEDGER.fault("sut agent killed (bus mode)")
                killed = time.monotonic()
                agents[0].kill(signal.SIGKILL)  # its own group only: the workload runs in a session of its own
                completed = collector.wait_stopped(run_id, timeout_s=30)
                waited = time.monotonic() - killed
                assert completed.status == "failed", completed
                assert completed.reason == (f"SUT agent {sut!r} missed 3 heartbeats (no sign of life for 6 s) "
                                            "during ranging"), completed.reason
                assert waited < 6.0 + 4.0, f"failed {waited:.1f} s after the kill (3 heartbeats of 2 s)"
                wait_until(lambda: not pid_alive(workload[0]), 10, "the workload to die with its agent")
                _check_aborted_run_kept(Path(completed.output_dir), collector, run_id, "missed 3 heartbeats",
                                        status="failed")

                agent_env["MLPOWER_AGENT_DURATION_S"] = "1"
                agents.append(start_mlpower("agent-bus2", ["agent", "--bus"], env=agent_env, log_dir=logs,
                                            ready=r"listening on mlpower\.[^.]+\.agent-"))
                status, accepted = http("POST", director_url(director, "/runs"),
                                        {"workload": "builtin:offline", "sample_interval_s": 0.1, "modes": ["testing"],
                                         "voltage_range_v": 300, "current_range_a": 5})
                assert status == 202, accepted
                completed = collector.wait_stopped(accepted["run_id"], timeout_s=30)
                assert completed.status == "success", completed.reason
                assert "StopWorkload for run" in agents[1].log(), "the failed run's stop waited for the next agent"
            finally:
                for agent in agents:
                    agent.stop()
                director.stop()
                for name in (f"agent-{sut}", f"director-{sut}"):  # this test's durable command queues
                    bus.delete_queue(f"mlpower.{lab}.{name}.commands")
                bus.delete_queue(director_events_queue(lab, sut).name)
            check_no_crash(director, agents[-1])
    finally:
        collector.close()
        bus.close()
