"""Bus mode: the director (or the lab) sends ``RunWorkloadPhase``; the agent runs that mode's
workload and publishes ``WorkloadPhase`` events.

The command names a workload this SUT declares (``registry``) and may set the parameters it
declares; anything else is refused before anything runs, with a ``failed`` event saying why
(``{"error": "refused: ..."}``) and no ``started`` event.

The handler only queues the command and returns, and one worker thread runs phases in order: a
workload lasts minutes, and holding the consumer that long would starve its connection's
heartbeats (and LoadGen logs land under ``<results>/<run_id>/<ranging|run_1>/``).

While a phase runs, a heartbeat thread publishes ``AgentHeartbeat`` (the phase's state and the
workload's PID) every ``heartbeat_s``; the director fails the run when they stop coming.

Stop means stop: ``StopWorkload`` (handled at once by the consumer, not behind the phase), the
agent's own SIGTERM/SIGINT (``close``), and a workload whose agent dies (the kernel's parent-death
signal, see ``workloads``) all end the workload's whole process group, SIGTERM first and SIGKILL
after ``stop_grace_s``. A run stopped before its phase started is remembered and never started.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from mlpower import topology
from mlpower.bus import Bus, Delivery, Subscription
from mlpower.logtext import client_text
from mlpower.schema import AgentHeartbeat, Message, RunWorkloadPhase, StopWorkload, WorkloadPhase
from mlpower.sut_agent import clock
from mlpower.sut_agent.errors import AgentError, WorkloadRefused
from mlpower.sut_agent.metrics import AgentMetrics
from mlpower.sut_agent.registry import Registry, load_registry
from mlpower.sut_agent.runner import MODE_DIRS, PhaseOutcome, failure_detail, run_phase
from mlpower.sut_agent.settings import Settings, split_address
from mlpower.timeutil import now_utc_s

log = logging.getLogger(__name__)

STOPPED_KEPT = 256
"""Run ids asked to stop that the agent remembers (so a late phase of such a run never starts)."""
CLOSING = "the SUT agent is stopping"


@dataclass
class _Current:
    """The phase the worker runs now, as the heartbeat reports it."""

    command: RunWorkloadPhase
    state: str = "preparing"
    pid: int | None = None


def command_queue(lab: str, sut: str) -> topology.QueueSpec:
    return topology.service_queue(f"agent-{sut}", topology.COMMANDS_EXCHANGE,
                                  (topology.command_key("agent", sut, lab=lab),), lab=lab)


def director_clock_offset(settings: Settings) -> clock.ClockOffset:
    """Best-of-three ``time`` round trips on a short power-dev connection to the director."""
    from mlpower.sut_agent.powerdev_client import DEFAULT_PORT, PowerDevClient, PowerDevConnection

    host, port = split_address(settings.server, DEFAULT_PORT)
    connection = PowerDevConnection(host, port, reply_timeout_s=settings.reply_timeout_s)
    try:
        client = PowerDevClient(connection)
        client.handshake()
        return clock.measure(client.remote_time_utc_s, f"power-dev server {host}:{port}")
    finally:
        connection.close()


class AgentService:
    """Consumes this SUT's ``RunWorkloadPhase`` commands; ``start()``, then ``close()``."""

    def __init__(self, settings: Settings, bus: Bus, metrics: AgentMetrics | None = None,
                 registry: Registry | None = None) -> None:
        self.settings, self.bus = settings, bus
        self.registry = registry if registry is not None else load_registry(settings.workloads_file)
        self.registry.resolve(None, settings.workload)  # a default this SUT does not offer stops the start
        self.metrics = metrics or AgentMetrics(settings.sut)
        self.outcomes: list[PhaseOutcome] = []
        self._commands: queue.Queue[RunWorkloadPhase | None] = queue.Queue()
        self._subscription: Subscription | None = None
        self._worker = threading.Thread(target=self._work, name=f"agent-{settings.sut}", daemon=True)
        self._beater = threading.Thread(target=self._beat, name=f"agent-{settings.sut}-heartbeat", daemon=True)
        self._lock = threading.Lock()
        self._current: _Current | None = None
        self._stopped: OrderedDict[str, str] = OrderedDict()
        self._closing = threading.Event()
        self._worked = threading.Event()  # the worker ended: nothing left to report

    @property
    def queue_spec(self) -> topology.QueueSpec:
        return command_queue(self.settings.lab, self.settings.sut)

    @property
    def subscriptions(self) -> list[Subscription]:
        return [self._subscription] if self._subscription is not None else []

    def start(self) -> AgentService:
        self._worker.start()
        self._beater.start()
        self._subscription = self.bus.subscribe(self.queue_spec, self._on_command)
        log.info("agent for SUT %s listening on %s; workloads: %s", self.settings.sut, self.queue_spec.name,
                 ", ".join(self.registry.names))
        return self

    def close(self) -> None:
        """Stop: the running workload's process group too (its phase fails, saying why), then wait."""
        self._closing.set()
        if self._subscription is not None:
            self._subscription.close()
        self._commands.put(None)
        if self._worker.is_alive():
            self._worker.join()
        if self._beater.is_alive():
            self._beater.join()

    def _on_command(self, message: Message, delivery: Delivery) -> None:
        if not isinstance(message, RunWorkloadPhase | StopWorkload):
            raise AgentError(f"the agent does not handle {getattr(message, 'type', '?')}")  # dead-lettered
        if message.sut != self.settings.sut:
            raise AgentError(f"command for SUT {client_text(message.sut)} reached the agent of {self.settings.sut!r}")
        if isinstance(message, StopWorkload):
            self.stop_workload(message.run_id, message.reason or "StopWorkload")
        else:
            self._commands.put(message)

    def stop_workload(self, run_id: str, reason: str) -> None:
        """Stop ``run_id``'s workload if it runs (the worker's poll sees it) and never start it later."""
        with self._lock:
            self._stopped[run_id] = reason
            self._stopped.move_to_end(run_id)
            while len(self._stopped) > STOPPED_KEPT:
                self._stopped.popitem(last=False)
            current = self._current
            running = current is not None and current.command.run_id == run_id
            if running and current is not None:
                current.state = "stopping"
        log.info("StopWorkload for run %s (%s)%s", client_text(run_id), client_text(reason),
                 ": stopping its workload" if running else ": not running here")

    def _abort_reason(self, run_id: str) -> str | None:
        """Polled while a workload runs: why it must stop now, if it must."""
        if self._closing.is_set():
            return CLOSING
        with self._lock:
            reason = self._stopped.get(run_id)
        return None if reason is None else f"stopped: {reason}"

    def _started(self, pid: int) -> None:
        with self._lock:
            if self._current is not None:
                self._current.pid = pid
                if self._current.state == "preparing":
                    self._current.state = "running"

    def _beat(self) -> None:
        while not self._worked.wait(self.settings.heartbeat_s):
            with self._lock:
                current = None if self._current is None else (self._current.command, self._current.state,
                                                              self._current.pid)
            if current is None:
                continue
            command, state, pid = current
            beat = AgentHeartbeat(run_id=command.run_id, sut=command.sut, mode=command.mode,
                                  state=state, pid=pid, t_utc_s=now_utc_s())
            try:
                self.bus.publish(beat, topology.event_key(beat, lab=self.settings.lab))
            except Exception as exc:  # a lost heartbeat is what the director watches for; never a crash here
                log.warning("heartbeat not sent: %s", exc)

    def _publish(self, event: WorkloadPhase) -> None:
        self.metrics.observe_phase(event)
        self.bus.publish(event, topology.event_key(event, lab=self.settings.lab))

    def _work(self) -> None:
        try:
            self._serve_commands()
        finally:
            self._worked.set()

    def _serve_commands(self) -> None:
        while (command := self._commands.get()) is not None:
            if self._closing.is_set():
                break
            with self._lock:
                stopped = self._stopped.get(command.run_id)
                if stopped is None:
                    self._current = _Current(command)
            if stopped is not None:
                log.info("%s phase of run %s not started: that run was stopped (%s)", command.mode,
                         client_text(command.run_id), client_text(stopped))
                continue
            try:
                self.outcomes.append(self.run_command(command))
            except AgentError as exc:
                log.error("%s run of %s failed: %s", command.mode, client_text(command.run_id), exc)
            except Exception as exc:  # the worker must survive to serve the next command
                log.exception("%s run of %s failed unexpectedly", command.mode, client_text(command.run_id))
                self._publish(WorkloadPhase(run_id=command.run_id, sut=command.sut, mode=command.mode,
                                            state="failed", t_utc_s=now_utc_s(),
                                            detail=f'{{"error": "internal error: {type(exc).__name__}"}}'))
            finally:
                with self._lock:
                    self._current = None

    def run_command(self, command: RunWorkloadPhase) -> PhaseOutcome:
        """Run one phase now (the worker thread's job; callable directly for in-process wiring)."""
        settings = self.settings
        try:
            try:
                workload, asked_duration_s = self.registry.resolve(command.workload, settings.workload)
            except WorkloadRefused as exc:
                raise WorkloadRefused(f"refused: {exc}") from None
            duration_s = asked_duration_s or settings.duration_s
            started_detail = f"workload {workload.name}"
            if settings.server:
                offset = director_clock_offset(settings)
                self.metrics.observe_offset(offset)  # before the limit check: an offset over it shows too
                # the SUT owner's choice (MLPOWER_AGENT_ALLOW_CLOCK_OFFSET), not the request's
                within = clock.check_offset(offset, allow=settings.allow_clock_offset)
                started_detail += (f"; clock offset to director {offset.offset_s * 1000:+.1f} ms "
                                   f"(round trip {offset.round_trip_s * 1000:.1f} ms, within limit: {within})")
        except AgentError as exc:
            self._publish(WorkloadPhase(run_id=command.run_id, sut=command.sut, mode=command.mode, state="failed",
                                        t_utc_s=now_utc_s(), detail=failure_detail(exc)))
            raise
        log_dir = Path(settings.results_dir) / topology.segment(command.run_id) / MODE_DIRS[command.mode]
        return run_phase(
            workload, command.mode, log_dir, run_id=command.run_id, sut=command.sut, duration_s=duration_s,
            publish=self._publish, started_detail=started_detail, timeout_s=settings.workload_timeout_s,
            abort_reason=lambda: self._abort_reason(command.run_id), on_start=self._started,
            stop_grace_s=settings.stop_grace_s,
        )
