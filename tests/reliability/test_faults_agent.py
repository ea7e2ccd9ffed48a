"""Fault: the SUT agent is killed (SIGKILL to its process group) in the middle of a run.

Client mode: a real ``mlpower agent --server`` against a real ``mlpower director``; the agent's
socket dies with it, so the director aborts the session (power-dev's "client disconnected").
Bus mode: a real ``mlpower agent --bus``; nothing closes, so the director aborts when the
phase's answer does not come within ``MLPOWER_PHASE_TIMEOUT_S``. Either way the session's files
stay (documents.jsonl ending in an aborted run.stop, samples.parquet with every sample of the
documents, server.json saying aborted) and the director takes the next session at once.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
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


def _check_aborted_run_kept(run_dir: Path, collector: RunCollector, run_id: str, reason: str) -> None:
    written = file_documents(run_dir)
    stop = written[-1]
    assert isinstance(stop, RunStop) and stop.status == "aborted" and reason in stop.reason, stop
    samples = page_samples(written)
    assert samples == stop.samples > 0
    assert pl.read_parquet(run_dir / "samples.parquet").height == samples
    summary = (run_dir / "power" / "server.json").read_text(encoding="utf-8")
    assert '"status": "aborted"' in summary
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
                time.sleep(0.5)
                LEDGER.fault("sut agent killed (client mode)")
                killed = time.monotonic()
                agent.kill(signal.SIGKILL)
                assert agent.wait(5) == -signal.SIGKILL
                completed = collector.wait_completed(run["run_id"], timeout_s=15)
                assert completed.status == "aborted" and "client disconnected" in completed.reason, completed
                assert time.monotonic() - killed < 10
                _check_aborted_run_kept(Path(completed.output_dir), collector, run["run_id"], "client disconnected")

                second = start_client_agent(port, tmp_path / "client", logs, duration_s=1.0, label="second",
                                            name="agent2")
                agents.append(second)
                assert second.wait(60) == 0, second.log()[-3000:]
                ended = [c for c in collector.completed.values() if c.run_id != run["run_id"]]
                assert len(ended) == 1 and ended[0].status == "success", ended
            finally:
                for started in agents:
                    started.stop()
                director.stop()
            check_no_crash(director, second)
    finally:
        collector.close()
        bus.close()


def test_agent_killed_in_bus_mode_aborts_after_the_phase_timeout(amqp_url: str, tmp_path: Path,
                                                                  unique: str) -> None:
    lab, sut, logs = f"lab{unique}", f"sut{unique}", tmp_path / "logs"
    bus = RabbitMQBus(amqp_url, client_name="fault-agent-bus")
    collector = RunCollector(bus, lab).start()
    try:
        with simulator(logs) as sim:
            env = director_env(analyzer=sim_resource(sim), results=tmp_path / "results", amqp_url=amqp_url, lab=lab,
                               sut=sut, MLPOWER_PHASE_TIMEOUT_S="8")
            director = start_director(env, logs)
            agent_env = {"AMQP_URL": amqp_url, "MLPOWER_LAB": lab, "MLPOWER_SUT": sut,
                         "MLPOWER_AGENT_SERVER": f"127.0.0.1:{director.info['powerdev']}",
                         "MLPOWER_AGENT_ALLOW_CLOCK_OFFSET": "true", "MLPOWER_RESULTS_DIR": str(tmp_path / "agent"),
                         "MLPOWER_AGENT_DURATION_S": "1", "MLPOWER_AGENT_HTTP_PORT": "0"}
            agents: list[Proc] = []
            try:
                agents.append(start_mlpower("agent-bus", ["agent", "--bus"], env=agent_env, log_dir=logs,
                                            ready=r"listening on mlpower\.[^.]+\.agent-"))
                status, accepted = http("POST", director_url(director, "/runs"),
                                        {"workload": "builtin:offline", "sample_interval_s": 0.1})
                assert status == 202 and accepted["via"] == "agent", accepted
                run_id = accepted["run_id"]
                wait_until(lambda: _running(director, "ranging"), 30, "the bus-mode run to start ranging")
                asked = time.monotonic()  # the director asks the agent for ranging as the phase starts
                # the agent makes the workload's LoadGen log folder when it starts the workload
                wait_until(lambda: (tmp_path / "agent" / run_id / "ranging").is_dir(), 30,
                           "the agent to start the ranging workload")
                time.sleep(0.3)
                LEDGER.fault("sut agent killed (bus mode)")
                agents[0].kill(signal.SIGKILL)
                completed = collector.wait_completed(run_id, timeout_s=15)
                waited = time.monotonic() - asked
                assert completed.status == "aborted", completed
                assert completed.reason == "no answer from the agent for ranging within 8 s", completed.reason
                assert 8.0 - 0.5 < waited < 8.0 + 3.0, f"aborted {waited:.1f} s after asking (timeout 8 s)"
                _check_aborted_run_kept(Path(completed.output_dir), collector, run_id, "no answer from the agent")

                agents.append(start_mlpower("agent-bus2", ["agent", "--bus"], env=agent_env, log_dir=logs,
                                            ready=r"listening on mlpower\.[^.]+\.agent-"))
                status, accepted = http("POST", director_url(director, "/runs"),
                                        {"workload": "builtin:offline", "sample_interval_s": 0.1, "modes": ["testing"],
                                         "voltage_range_v": 300, "current_range_a": 5})
                assert status == 202, accepted
                completed = collector.wait_completed(accepted["run_id"], timeout_s=30)
                assert completed.status == "success", completed.reason
            finally:
                for agent in agents:
                    agent.stop()
                director.stop()
                for name in (f"agent-{sut}", f"director-{sut}"):  # this test's durable command queues
                    bus.delete_queue(f"mlpower.{lab}.{name}.commands")
            check_no_crash(director, agents[-1])
    finally:
        collector.close()
        bus.close()
