"""Remote-command attempts over HTTP, the bus and power-dev: a shell command sent as a workload runs
nothing, an unknown workload name is refused before anything runs and the refusal says why."""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from mlpower import topology
from mlpower.rabbitmq import RabbitMQBus
from mlpower.schema import Message, RunStop, RunWorkloadPhase, StartRun, WorkloadPhase

from tests.director.powerdev_client import ProtocolClient
from tests.reliability.procs import wait_until
from tests.security.lab import Lab
from tests.security.ledger import LEDGER

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

CLIENT = "mlcommons/power client v3"


def shell_texts(marker: str) -> list[str]:
    return [f"; touch {marker}", f"builtin:offline; touch {marker}", f"$(touch {marker})", f"`touch {marker}`",
            f"touch {marker}", f"sh -c 'touch {marker}'", f"builtin:offline && touch {marker}",
            f"builtin:offline\ntouch {marker}", f"| touch {marker}", f"../../../bin/touch {marker}"]


def _director_idle(lab: Lab) -> bool:
    """Ends a run an attempt left behind (the director before its side of issue 18): True when idle."""
    status = lab.http("GET", "director", "/status").json()
    if status["busy"]:
        lab.http("POST", "director", f"/runs/{status['run']['run_id']}/stop", token=lab.token)
    return not status["busy"]


def test_a_shell_command_posted_as_a_workload_runs_nothing(lab: Lab, measured: dict[str, Any]) -> None:
    for text in shell_texts(str(lab.marker)):
        for body in ({"workload": text}, {"workload": text, "phase_s": 1}):
            answer = lab.http("POST", "director", "/runs", token=lab.token, json=body)
            refused = answer.status_code != 202
            LEDGER.attempt("remote command: HTTP", f"POST /runs {text!r}", refused)
            assert refused, (text, answer.status_code, answer.text)
            wait_until(lambda: _director_idle(lab), 30, "the director to be idle again")
    assert not lab.marker.exists()


def test_the_director_refuses_a_shell_workload_with_422_before_opening_a_session(lab: Lab,
                                                                                measured: dict[str, Any]) -> None:
    before = {run["run_id"] for run in lab.http("GET", "director", "/runs").json()}
    try:
        answer = lab.http("POST", "director", "/runs", token=lab.token, json={"workload": f"; touch {lab.marker}"})
        assert answer.status_code == 422, answer.status_code
        assert "workload" in answer.text
        assert not lab.http("GET", "director", "/status").json()["busy"]
        assert {run["run_id"] for run in lab.http("GET", "director", "/runs").json()} == before
    finally:
        wait_until(lambda: _director_idle(lab), 30, "the director to be idle again")


@pytest.fixture
def bus(lab: Lab) -> Iterator[RabbitMQBus]:
    """The bus as an attacker holding the lab's own broker account would use it."""
    connection = RabbitMQBus(lab.amqp_url, lab=lab.lab, client_name="attacker")
    yield connection
    connection.close()


def _listen(bus: RabbitMQBus, lab: Lab) -> queue.Queue[Message]:
    received: queue.Queue[Message] = queue.Queue()
    for exchange, pattern in ((topology.EVENTS_EXCHANGE, f"workload_phase.*.{lab.sut}"),
                              (topology.RUNS_EXCHANGE, f"*.{lab.sut}.#")):  # run documents: for the run.stop
        spec = topology.QueueSpec("", exchange, (pattern,), durable=False, exclusive=True)
        bus.subscribe(spec, lambda message, delivery: received.put(message))
    return received


def _next(received: queue.Queue[Message], run_id: str, kind: type, timeout_s: float = 60) -> Any:
    def found() -> Any:
        try:
            message = received.get(timeout=0.5)
        except queue.Empty:
            return None
        return message if isinstance(message, kind) and getattr(message, "run_id", "") == run_id else None

    return wait_until(found, timeout_s, f"{kind.__name__} of {run_id}", every_s=0)


def test_a_shell_command_on_the_bus_runs_nothing(lab: Lab, bus: RabbitMQBus, measured: dict[str, Any]) -> None:
    received = _listen(bus, lab)
    agent_key = topology.command_key("agent", lab.sut, lab=lab.lab)
    director_key = topology.command_key("director", lab.sut, lab=lab.lab)
    for text in shell_texts(str(lab.marker)):
        for kind, key in (("cmd.run_workload_phase", agent_key), ("cmd.start_run", director_key)):
            body = {"v": 1, "type": kind, "sut": lab.sut, "workload": text}
            if kind == "cmd.run_workload_phase":
                body.update(run_id=f"evil-{uuid.uuid4().hex[:6]}", mode="testing")
            bus.publish_raw(topology.COMMANDS_EXCHANGE, key, json.dumps(body).encode())
            for shape in ({"name": text}, {"name": "builtin:offline", "command": text}):  # nested, extra fields
                bus.publish_raw(topology.COMMANDS_EXCHANGE, key, json.dumps({**body, "workload": shape}).encode())
    # The agent's queue is in order: once a command sent after them is answered, every one above was handled.
    probe = f"probe-{uuid.uuid4().hex[:6]}"
    bus.publish(RunWorkloadPhase(run_id=probe, sut=lab.sut, mode="testing", workload="not-declared"), agent_key)
    answer = _next(received, probe, WorkloadPhase)
    refused = answer.state == "failed" and not lab.marker.exists()
    for text in shell_texts(str(lab.marker)):
        LEDGER.attempt("remote command: bus", text, refused)
    assert refused and "refused: unknown workload 'not-declared'" in json.loads(answer.detail)["error"]
    wait_until(lambda: _director_idle(lab), 30, "the director to be idle")  # nothing was started there either


def test_an_undeclared_workload_is_refused_before_anything_runs_with_the_reason(lab: Lab, bus: RabbitMQBus,
                                                                                measured: dict[str, Any]) -> None:
    received = _listen(bus, lab)
    run_id = f"unknown-{uuid.uuid4().hex[:6]}"
    bus.publish(StartRun(sut=lab.sut, run_id=run_id, workload="rm-rf", sample_interval_s=1.0),
                topology.command_key("director", lab.sut, lab=lab.lab))
    first = _next(received, run_id, WorkloadPhase)
    completed = _next(received, run_id, RunStop, timeout_s=120)
    refused = first.state == "failed" and completed.status == "failed"
    LEDGER.attempt("remote command: bus", "StartRun naming an undeclared workload", refused)
    assert refused, (first, completed)
    assert "refused: unknown workload 'rm-rf'" in first.detail and "refused" in completed.reason
    over_http = lab.http("POST", "director", "/runs", token=lab.token, json={"workload": "rm-rf"})
    assert over_http.status_code == 202
    run = over_http.json()["run_id"]
    status = wait_until(lambda: (s := lab.http("GET", "director", f"/runs/{run}").json())["state"] == "ended" and s,
                      120, "the HTTP run to end")
    refused = status["status"] == "failed" and "refused: unknown workload" in status["reason"]
    LEDGER.attempt("remote command: HTTP", "POST /runs naming an undeclared workload", refused)
    assert refused, status


def test_power_dev_takes_no_command_text(lab: Lab, measured: dict[str, Any]) -> None:
    marker = lab.marker
    attempts = [f"new,;touch {marker},{uuid.uuid4()}", f"new,$(touch {marker}),{uuid.uuid4()}",
                f"new,x`touch {marker}`,{uuid.uuid4()}", "set_ntp", f"set_ntp,touch {marker}",
                f"session,*,start,ranging;touch {marker}", f"time,$(touch {marker})", f"touch {marker}"]
    client = ProtocolClient("127.0.0.1", lab.ports["power-dev"], timeout_s=30)
    try:
        assert client.command(CLIENT) == "mlcommons/power server v3"
        for line in attempts:
            reply = client.command(line) or ""
            refused = reply.startswith("Error")
            LEDGER.attempt("remote command: power-dev", line, refused)
            assert refused, (line, reply)
    finally:
        client.close()
    assert not marker.exists()
