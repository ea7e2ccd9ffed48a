"""Bus mode on the real RabbitMQ: a RunWorkloadPhase command in, workload phase events out."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpower import topology
from mlpower.bus import Delivery
from mlpower.schema import Message, RunWorkloadPhase, WorkloadPhase, WorkloadRequest
from mlpower.settings import load_settings
from mlpower.sut_agent.bus_mode import AgentService
from mlpower.sut_agent.settings import Settings
from mlpower.testing import wait_for

pytestmark = pytest.mark.rabbitmq

Agent = tuple[AgentService, queue.Queue[WorkloadPhase]]


@pytest.fixture
def agent_events(rabbit_bus: object, unique: str, tmp_path: Path) -> Iterator[Agent]:
    received: queue.Queue[WorkloadPhase] = queue.Queue()

    def collect(message: Message, delivery: Delivery) -> None:
        assert isinstance(message, WorkloadPhase) and delivery.routing_key == f"workload_phase.lab{unique}.sut{unique}"
        received.put(message)

    spec = topology.QueueSpec(name="", exchange=topology.EVENTS_EXCHANGE, patterns=(f"workload_phase.*.sut{unique}",),
                              durable=False, exclusive=True)
    listener = rabbit_bus.subscribe(spec, collect)  # type: ignore[attr-defined]
    declared = tmp_path / "workloads.toml"
    declared.write_text('[workloads.oom]\ncommand = "echo out of memory >&2; exit 7"\n')
    settings = load_settings(Settings, sut=f"sut{unique}", lab=f"lab{unique}", results_dir=tmp_path, duration_s=1.0,
                             workloads_file=declared)
    service = AgentService(settings, rabbit_bus).start()
    try:
        yield service, received
    finally:
        service.close()
        listener.close()
        rabbit_bus.delete_queue(service.queue_spec.name)  # type: ignore[attr-defined]


def take(received: queue.Queue[WorkloadPhase], count: int, timeout_s: float = 60.0) -> list[WorkloadPhase]:
    return [received.get(timeout=timeout_s) for _ in range(count)]


def test_a_phase_command_produces_events_in_order(rabbit_bus: object, agent_events: Agent,
                                                  unique: str, tmp_path: Path) -> None:
    service, received = agent_events
    command = RunWorkloadPhase(run_id=f"run{unique}", sut=f"sut{unique}", mode="testing",
                               workload=WorkloadRequest(name="builtin:offline", duration_s=1.0))
    rabbit_bus.publish(command, topology.command_key("agent", f"sut{unique}", lab=f"lab{unique}"))  # type: ignore[attr-defined]
    events = take(received, 4)
    assert [e.state for e in events] == ["started", "power_begin", "power_end", "finished"]
    assert {(e.run_id, e.mode) for e in events} == {(f"run{unique}", "testing")}
    assert events[0].t_utc_s < events[1].t_utc_s < events[2].t_utc_s < events[3].t_utc_s
    assert (tmp_path / f"run{unique}" / "run_1" / "mlperf_log_detail.txt").is_file()
    finished = json.loads(events[3].detail)
    assert finished["loadgen"]["scenario"] == "Offline" and finished["compliant_durations"] is False


def test_a_failing_workload_publishes_failed(rabbit_bus: object, agent_events: Agent,
                                             unique: str) -> None:
    _, received = agent_events
    command = RunWorkloadPhase(run_id=f"bad{unique}", sut=f"sut{unique}", mode="ranging", workload="oom")
    rabbit_bus.publish(command, topology.command_key("agent", f"sut{unique}", lab=f"lab{unique}"))  # type: ignore[attr-defined]
    started, failed = take(received, 2)
    assert (started.state, failed.state, failed.mode) == ("started", "failed", "ranging")
    detail = json.loads(failed.detail)
    assert detail["exit_code"] == 7 and "out of memory" in detail["stderr_tail"]


@pytest.mark.parametrize("workload, reason", [
    (WorkloadRequest(name="builtin:nope"), "unknown workload 'builtin:nope': this SUT declares builtin:offline"),
    (WorkloadRequest(name="resnet50"), "unknown workload 'resnet50'"),
    (WorkloadRequest(name="oom", scenario="Server"), "workload oom takes no parameter scenario"),
    (WorkloadRequest(name="oom", duration_s=5), "workload oom takes no parameter duration_s"),
    (WorkloadRequest(name="builtin:offline", scenario="Server"), "takes no parameter scenario"),
])
def test_an_undeclared_workload_or_parameter_is_refused_before_anything_runs(
        rabbit_bus: object, agent_events: Agent, unique: str, workload: WorkloadRequest, reason: str) -> None:
    _, received = agent_events
    command = RunWorkloadPhase(run_id=f"x{unique}", sut=f"sut{unique}", mode="testing", workload=workload)
    rabbit_bus.publish(command, topology.command_key("agent", f"sut{unique}", lab=f"lab{unique}"))  # type: ignore[attr-defined]
    (failed,) = take(received, 1)  # no "started": nothing ran
    assert failed.state == "failed"
    error = json.loads(failed.detail)["error"]
    assert error.startswith("refused: ") and reason in error, error


def test_a_shell_command_on_the_bus_runs_nothing(rabbit_bus: object, agent_events: Agent, unique: str,
                                                 tmp_path: Path) -> None:
    """Raw JSON past the schema: undecodable, so dead-lettered; the agent never sees it."""
    service, received = agent_events
    marker = tmp_path / f"PWNED-{unique}"
    key = topology.command_key("agent", f"sut{unique}", lab=f"lab{unique}")
    for text in (f"touch {marker}", f"builtin:offline; touch {marker}", f"$(touch {marker})"):
        body = json.dumps({"v": 1, "type": "cmd.run_workload_phase", "run_id": f"evil{unique}", "sut": f"sut{unique}",
                           "mode": "testing", "workload": text}).encode()
        rabbit_bus.publish_raw(topology.COMMANDS_EXCHANGE, key, body)  # type: ignore[attr-defined]
    # the queue is in order: once this one is refused, the three before it were handled
    rabbit_bus.publish(RunWorkloadPhase(run_id=f"after{unique}", sut=f"sut{unique}", mode="testing",  # type: ignore[attr-defined]
                                        workload="nothing-declared"), key)
    (failed,) = take(received, 1)
    assert failed.run_id == f"after{unique}" and failed.state == "failed"
    assert not marker.exists() and service.outcomes == []


@pytest.mark.slow
def test_the_simulator_follows_the_loadgen_window(rabbit_bus: object, agent_events: Agent, unique: str) -> None:
    simulator_module = pytest.importorskip("mlpower.analyzer_sim.simulator")
    _, received = agent_events
    readings: list[tuple[float, float]] = []
    sampling = threading.Event()
    with simulator_module.start_simulator(port=0, load="follow:100:300", bus=rabbit_bus, lab=f"lab{unique}",
                                          sut=f"sut{unique}") as simulator:
        idle_w = simulator.true_power_w  # before the workload is asked for

        def sample() -> None:  # a probe of the simulated load at 20 Hz, until the test has seen enough
            while True:
                readings.append((time.time(), simulator.true_power_w))
                if sampling.wait(0.05):
                    return

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            command = RunWorkloadPhase(run_id=f"f{unique}", sut=f"sut{unique}", mode="testing",
                                       workload=WorkloadRequest(name="builtin:singlestream", duration_s=2.0))
            rabbit_bus.publish(command, topology.command_key("agent", f"sut{unique}", lab=f"lab{unique}"))  # type: ignore[attr-defined]
            started, begin, end, finished = take(received, 4)
            # the simulator's own consumer sees power_end/finished too: back to idle, then a few idle samples
            wait_for(lambda: readings and readings[-1][1] <= 101, 10, what="the load back at idle")
            idle_from = len(readings)
            wait_for(lambda: len(readings) >= idle_from + 3, 10, what="idle samples")
        finally:
            sampling.set()
            sampler.join()
    states = (started.state, begin.state, end.state, finished.state)
    assert states == ("started", "power_begin", "power_end", "finished")
    inside = [power for t, power in readings if begin.t_utc_s < t < end.t_utc_s]
    assert len(inside) > 10 and min(inside) > idle_w + 100  # loaded for the whole LoadGen window
    assert readings[-1][1] < min(inside) - 100  # and back to idle after it
