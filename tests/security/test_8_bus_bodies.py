"""Hostile bodies and forged control messages on the lab's bus, sent with the lab's own broker account:
a body nested deeper than Python's stack, StopWorkload for another lab, for another SUT and for a
run that does not exist, and heartbeats for a run that does not exist. Each lands in the dead
letters or is ignored: the agent goes on answering the next command and the director stays ready
(its bus subscriptions connected)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from mlpower import topology
from mlpower.rabbitmq import RabbitMQBus
from mlpower.schema import AgentHeartbeat, RunWorkloadPhase, StopWorkload, WorkloadPhase

from tests.reliability.procs import wait_until
from tests.security.lab import Lab
from tests.security.ledger import LEDGER
from tests.security.test_2_remote_command import _director_idle, _listen, _next, bus  # noqa: F401 (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

DEEP = (b"[" * 100_000, b'{"v":1,"type":"cmd.stop_workload","sut":"x","run_id":"r","reason":' + b"[" * 100_000)


def test_deep_bodies_and_forged_stops_leave_the_agent_and_the_director_answering(
        lab: Lab, bus: RabbitMQBus, measured: dict[str, Any]) -> None:  # noqa: F811
    # a run an earlier attack left going would hold the director (commands wait behind it): end it first
    wait_until(lambda: _director_idle(lab), 120, "the director to be idle")
    received = _listen(bus, lab)
    agent_key = topology.command_key("agent", lab.sut, lab=lab.lab)
    director_key = topology.command_key("director", lab.sut, lab=lab.lab)
    sent = []
    for body in DEEP:
        for key in (agent_key, director_key):
            bus.publish_raw(topology.COMMANDS_EXCHANGE, key, body)
            sent.append(f"{len(body)}-byte nested body to {key.split('.')[1]}")
    forged = [
        (StopWorkload(run_id="forged-other-lab", sut=lab.sut, reason="x"),
         topology.command_key("agent", lab.sut, lab=f"{lab.lab}x")),
        (StopWorkload(run_id="forged-other-sut", sut=f"{lab.sut}x", reason="x"), agent_key),
        (StopWorkload(run_id=f"forged-{uuid.uuid4().hex[:6]}", sut=lab.sut, reason="\x1b[2J[/]" * 100), agent_key),
    ]
    for message, key in forged:
        bus.publish(message, key)
        sent.append(f"StopWorkload {message.run_id}")
    beat = AgentHeartbeat(run_id="no-such-run", sut=lab.sut, mode="testing", state="running", pid=1, t_utc_s=1.0)
    for _ in range(20):  # heartbeats of a run nobody runs: nothing starts, nothing is kept alive
        bus.publish(beat, topology.event_key(beat, lab=lab.lab))
    sent.append("20 heartbeats of a run that does not exist")

    # the agent's queue is in order: its answer to a command sent after them says it is still serving
    probe = f"probe-{uuid.uuid4().hex[:6]}"
    bus.publish(RunWorkloadPhase(run_id=probe, sut=lab.sut, mode="testing", workload="not-declared"), agent_key)
    agent_answer = _next(received, probe, WorkloadPhase)
    # and the director still consumes its command queue (its /readyz checks the bus subscriptions)
    ready = wait_until(lambda: lab.http("GET", "director", "/readyz").status_code == 200, 60, "the director ready")
    refused = agent_answer.state == "failed" and bool(ready)
    for what in sent:
        LEDGER.attempt("bus: hostile body or forged control", what, refused)
    assert refused, agent_answer
    wait_until(lambda: _director_idle(lab), 30, "the director to be idle")
    status = lab.http("GET", "director", "/status").json()
    assert not status["busy"], status
    agent_log = (lab.logs / "sut-agent.log").read_text(errors="replace")
    assert "\x1b[2J" not in agent_log  # the forged reason is logged escaped
    assert "forged-other-lab" not in agent_log  # another lab's key never reaches this lab's agent
