"""Stop means stop, and the agent says it is alive: on the real RabbitMQ, a declared workload that
starts children of its own (a shell with two sleeps, one in the background) is run by the agent;
its heartbeats carry the workload's PID; ``StopWorkload`` and the agent's own stop (what its
SIGTERM handler does) end the whole process group; a run stopped before its phase never starts."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlpower import topology
from mlpower.bus import Delivery
from mlpower.schema import AgentHeartbeat, Message, RunWorkloadPhase, StopWorkload, WorkloadPhase
from mlpower.settings import load_settings
from mlpower.sut_agent.bus_mode import CLOSING, AgentService
from mlpower.sut_agent.settings import Settings
from mlpower.testing import wait_for

pytestmark = pytest.mark.rabbitmq

HEARTBEAT_S = 0.3
HANG = "sleep 300 & sleep 300"  # a shell, a background child and a foreground child: one process group


@dataclass
class Agent:
    service: AgentService
    bus: object
    sut: str
    events: queue.Queue[WorkloadPhase]
    beats: queue.Queue[AgentHeartbeat]

    def send(self, message: Message) -> None:
        self.bus.publish(message, topology.command_key("agent", self.sut, lab=self.service.settings.lab))  # type: ignore[attr-defined]

    def next_event(self, timeout_s: float = 30.0) -> WorkloadPhase:
        return self.events.get(timeout=timeout_s)

    def running_beat(self, run_id: str, timeout_s: float = 30.0) -> AgentHeartbeat:
        def found() -> AgentHeartbeat | None:
            while True:
                try:
                    beat = self.beats.get_nowait()
                except queue.Empty:
                    return None
                if beat.run_id == run_id and beat.state == "running" and beat.pid:
                    return beat

        result: AgentHeartbeat = wait_for(found, timeout_s, what=f"a heartbeat of run {run_id} with a PID")
        return result


@pytest.fixture
def agent(rabbit_bus: object, unique: str, tmp_path: Path) -> Iterator[Agent]:
    lab, sut = f"lab{unique}", f"sut{unique}"
    events: queue.Queue[WorkloadPhase] = queue.Queue()
    beats: queue.Queue[AgentHeartbeat] = queue.Queue()

    def collect(message: Message, delivery: Delivery) -> None:
        (beats if isinstance(message, AgentHeartbeat) else events).put(message)  # type: ignore[arg-type]

    spec = topology.QueueSpec(name="", exchange=topology.EVENTS_EXCHANGE, durable=False, exclusive=True,
                              patterns=(f"workload_phase.{lab}.{sut}", f"agent_heartbeat.{lab}.{sut}"))
    listener = rabbit_bus.subscribe(spec, collect)  # type: ignore[attr-defined]
    declared = tmp_path / "workloads.toml"
    declared.write_text(f'[workloads.hang]\ncommand = "{HANG}"\n[workloads.oom]\ncommand = "exit 7"\n')
    settings = load_settings(Settings, sut=sut, lab=lab, results_dir=tmp_path, duration_s=1.0,
                             workloads_file=declared, heartbeat_s=HEARTBEAT_S, stop_grace_s=2.0)
    service = AgentService(settings, rabbit_bus).start()
    try:
        yield Agent(service, rabbit_bus, sut, events, beats)
    finally:
        service.close()
        listener.close()
        rabbit_bus.delete_queue(service.queue_spec.name)  # type: ignore[attr-defined]


def group_members(pgid: int) -> set[int]:
    """Every live process of the process group ``pgid`` (read from /proc)."""
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.add(int(entry.name))
    return members


def start_hang(agent: Agent, run_id: str) -> int:
    """Run the hanging workload; its process group (the heartbeat's PID leads it) once it has started."""
    agent.send(RunWorkloadPhase(run_id=run_id, sut=agent.sut, mode="testing", workload="hang"))
    assert agent.next_event().state == "started"
    beat = agent.running_beat(run_id)
    assert beat.mode == "testing" and beat.sut == agent.sut
    members = wait_for(lambda: (found := group_members(beat.pid or 0)) and len(found) >= 3 and found, 10,
                       what="the workload's shell and its two children")
    assert beat.pid in members
    return beat.pid or 0


def test_stop_workload_ends_the_whole_process_group(agent: Agent, unique: str) -> None:
    group = start_hang(agent, f"run{unique}")
    agent.send(StopWorkload(run_id=f"run{unique}", sut=agent.sut, reason="run aborted: operator"))
    failed = agent.next_event()
    assert (failed.state, failed.run_id) == ("failed", f"run{unique}")
    assert json.loads(failed.detail)["error"] == "stopped: run aborted: operator"
    assert group_members(group) == set(), "workload processes left behind"


def test_the_agents_own_stop_ends_the_workload(agent: Agent, unique: str) -> None:
    group = start_hang(agent, f"run{unique}")
    agent.service.close()  # what SIGTERM and SIGINT lead to in `mlpower agent --bus`
    failed = agent.next_event()
    assert failed.state == "failed" and json.loads(failed.detail)["error"] == CLOSING
    assert group_members(group) == set(), "workload processes left behind"


def test_a_run_stopped_before_its_phase_never_starts(agent: Agent, unique: str) -> None:
    agent.send(StopWorkload(run_id=f"gone{unique}", sut=agent.sut, reason="director restarted"))
    agent.send(RunWorkloadPhase(run_id=f"gone{unique}", sut=agent.sut, mode="ranging", workload="hang"))
    agent.send(RunWorkloadPhase(run_id=f"next{unique}", sut=agent.sut, mode="ranging", workload="oom"))
    started, failed = agent.next_event(), agent.next_event()
    assert [(e.run_id, e.state) for e in (started, failed)] == [(f"next{unique}", "started"),
                                                                (f"next{unique}", "failed")]
    assert json.loads(failed.detail)["exit_code"] == 7
