"""A bus-mode lab of real processes on a private RabbitMQ node, for faults that restart things:
``mlpower sim``, ``mlpower director`` (fixed ports and a spool folder, so a restarted director is
the same director to its agent) and ``mlpower agent --bus``, plus a durable ``RunCollector``.

Each fault is one method; ``seen`` gathers every process of the lab's tree (workloads included)
met on the way, so a test can check that none outlives the lab.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpower.rabbitmq import RabbitMQBus
from mlpower.schema import RunStop, SamplePage

from tests.reliability.collect import RunCollector, file_documents, page_samples
from tests.reliability.procs import (
    Broker,
    Proc,
    descendants,
    director_env,
    director_url,
    free_port,
    http,
    sim_fault,
    sim_resource,
    snapshot,
    start_director,
    start_mlpower,
    wait_until,
)

LOADGEN = "mlpower.sut_agent.loadgen_runner"
AGENT_READY = r"listening on mlpower\.[^.]+\.agent-"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


@dataclass
class BusLab:
    broker: Broker
    sim: Proc
    root: Path
    lab: str
    sut: str
    heartbeat_s: float = 2.0
    workload_s: float = 2.0
    director: Proc | None = None
    agent: Proc | None = None
    seen: dict[int, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    _bus: RabbitMQBus | None = None
    collector: RunCollector | None = None
    _ports: dict[str, int] = field(default_factory=dict)
    _starts: int = 0

    # ------------------------------------------------------------------ start and stop

    def start(self) -> BusLab:
        self._ports = {"powerdev": free_port(), "http": free_port()}
        self._bus = RabbitMQBus(self.broker.url, client_name="buslab-collector", lab=self.lab)
        self.collector = RunCollector(self._bus, self.lab, durable=True).start()
        self.start_director()
        self.start_agent()
        return self

    def _name(self, what: str) -> str:
        self._starts += 1
        return f"{what}{self._starts}"

    def start_director(self) -> Proc:
        env = director_env(analyzer=sim_resource(self.sim), results=self.root / "results", amqp_url=self.broker.url,
                           lab=self.lab, sut=self.sut, MLPOWER_SPOOL_DIR=str(self.root / "spool"),
                           MLPOWER_POWERDEV_PORT=str(self._ports["powerdev"]),
                           MLPOWER_DIRECTOR_HTTP_PORT=str(self._ports["http"]),
                           MLPOWER_HEARTBEAT_S=str(self.heartbeat_s))
        self.director = start_director(env, self.root / "logs", name=self._name("director"))
        self.procs.append(self.director)
        return self.director

    def start_agent(self) -> Proc:
        env = {"AMQP_URL": self.broker.url, "MLPOWER_LAB": self.lab, "MLPOWER_SUT": self.sut,
               "MLPOWER_AGENT_SERVER": f"127.0.0.1:{self._ports['powerdev']}",
               "MLPOWER_AGENT_ALLOW_CLOCK_OFFSET": "true", "MLPOWER_RESULTS_DIR": str(self.root / "agent"),
               "MLPOWER_AGENT_DURATION_S": f"{self.workload_s:g}", "MLPOWER_AGENT_HTTP_PORT": "0",
               "MLPOWER_HEARTBEAT_S": str(self.heartbeat_s), "MLPOWER_AGENT_STOP_GRACE_S": "2"}
        self.agent = start_mlpower(self._name("agent"), ["agent", "--bus"], env=env, log_dir=self.root / "logs",
                                   ready=AGENT_READY)
        self.procs.append(self.agent)
        return self.agent

    def look(self) -> None:
        """Note every process of the lab's tree now (a workload lives in a session of its own)."""
        roots = {p.pid for p in (self.sim, *self.procs) if p.alive()}
        self.seen.update(snapshot(roots | descendants(roots)))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        if self.collector is not None:
            self.collector.close(delete=True)
        if self._bus is not None:
            for name in (f"agent-{self.sut}", f"director-{self.sut}"):
                try:
                    self._bus.delete_queue(f"mlpower.{self.lab}.{name}.commands")
                except Exception:  # the private node goes with the test anyway
                    pass
            self._bus.close()

    # ------------------------------------------------------------------ runs

    def url(self, path: str) -> str:
        assert self.director is not None
        return director_url(self.director, path)

    def start_run(self, *, modes: tuple[str, ...] = ("testing",)) -> tuple[str, Path]:
        body: dict[str, Any] = {"workload": "builtin:offline", "sample_interval_s": 0.1, "modes": list(modes)}
        if "ranging" not in modes:
            body.update(voltage_range_v=300, current_range_a=5)
        status, accepted = http("POST", self.url("/runs"), body)
        assert status == 202 and accepted["via"] == "agent", accepted
        return accepted["run_id"], Path(accepted["output_dir"])

    def workload_running(self, run_id: str, timeout_s: float = 60.0) -> set[int]:
        """Wait until the agent runs this run's LoadGen workload; its PIDs."""
        assert self.agent is not None
        agent = self.agent

        def running() -> set[int]:
            return {pid for pid in descendants({agent.pid}) if LOADGEN in _cmdline(pid) and run_id in _cmdline(pid)}

        found: set[int] = wait_until(running, timeout_s, f"the workload of {run_id}")
        self.look()
        return found

    def wait_end(self, run_id: str, timeout_s: float = 60.0) -> RunStop:
        assert self.collector is not None
        return self.collector.wait_stopped(run_id, timeout_s=timeout_s)

    def check_exactly_once(self, run_id: str, run_dir: Path) -> int:
        """The run's documents on disk arrived on the bus each exactly once (after dedupe); its samples."""
        assert self.collector is not None
        written = file_documents(run_dir)
        stop = written[-1]
        assert isinstance(stop, RunStop), f"{run_id}: documents.jsonl does not end in run.stop"
        got = self.collector.wait_all(run_id, len(written), timeout_s=30)
        assert sorted(got) == [d.seq for d in written] == list(range(len(written))), run_id
        assert all(got[d.seq] == d for d in written), f"{run_id}: a document arrived different from the one written"
        sent = page_samples(written)
        received = page_samples(d for d in got.values() if isinstance(d, SamplePage))
        assert sent == received == stop.samples, (run_id, sent, received, stop.samples)
        return sent

    # ------------------------------------------------------------------ faults

    def restart_broker(self, away_s: float = 1.0) -> None:
        self.broker.stop_app()
        time.sleep(away_s)  # the broker stays away while everything else carries on
        self.broker.start_app()

    def kill_agent(self) -> set[int]:
        """SIGKILL the agent's group; returns its workload's PIDs (which must die with it)."""
        assert self.agent is not None
        workload = {pid for pid in descendants({self.agent.pid}) if LOADGEN in _cmdline(pid)}
        self.look()
        self.agent.kill(signal.SIGKILL)
        self.agent.wait(10)
        return workload

    def kill_director(self) -> None:
        assert self.director is not None
        self.look()
        self.director.kill(signal.SIGKILL)
        self.director.wait(10)

    def drop_analyzer(self, on: bool = True) -> None:
        sim_fault(self.sim, "disconnect", on=on)
