"""Bus mode: the director (or the lab) sends ``RunWorkloadPhase``; the agent runs that mode's
workload and publishes ``WorkloadPhase`` events.

The command names a workload this SUT declares (``registry``) and may set the parameters it
declares; anything else is refused before anything runs, with a ``failed`` event saying why
(``{"error": "refused: ..."}``) and no ``started`` event.

The handler only queues the command and returns, and one worker thread runs phases in order: a
workload lasts minutes, and holding the consumer that long would starve its connection's
heartbeats (and LoadGen logs land under ``<results>/<run_id>/<ranging|run_1>/``).
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from mlpower import topology
from mlpower.bus import Bus, Delivery, Subscription
from mlpower.logtext import client_text
from mlpower.schema import Message, RunWorkloadPhase, WorkloadPhase
from mlpower.sut_agent import clock
from mlpower.sut_agent.errors import AgentError, WorkloadRefused
from mlpower.sut_agent.metrics import AgentMetrics
from mlpower.sut_agent.registry import Registry, load_registry
from mlpower.sut_agent.runner import MODE_DIRS, PhaseOutcome, failure_detail, run_phase
from mlpower.sut_agent.settings import Settings, split_address
from mlpower.timeutil import now_utc_s

log = logging.getLogger(__name__)


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

    @property
    def queue_spec(self) -> topology.QueueSpec:
        return command_queue(self.settings.lab, self.settings.sut)

    def start(self) -> AgentService:
        self._worker.start()
        self._subscription = self.bus.subscribe(self.queue_spec, self._on_command)
        log.info("agent for SUT %s listening on %s; workloads: %s", self.settings.sut, self.queue_spec.name,
                 ", ".join(self.registry.names))
        return self

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        self._commands.put(None)
        if self._worker.is_alive():
            self._worker.join()

    def _on_command(self, message: Message, delivery: Delivery) -> None:
        if not isinstance(message, RunWorkloadPhase):
            raise AgentError(f"the agent does not handle {getattr(message, 'type', '?')}")  # dead-lettered
        if message.sut != self.settings.sut:
            raise AgentError(f"command for SUT {client_text(message.sut)} reached the agent of {self.settings.sut!r}")
        self._commands.put(message)

    def _publish(self, event: WorkloadPhase) -> None:
        self.metrics.observe_phase(event)
        self.bus.publish(event, topology.event_key(event, lab=self.settings.lab))

    def _work(self) -> None:
        while (command := self._commands.get()) is not None:
            try:
                self.outcomes.append(self.run_command(command))
            except AgentError as exc:
                log.error("%s run of %s failed: %s", command.mode, client_text(command.run_id), exc)
            except Exception as exc:  # the worker must survive to serve the next command
                log.exception("%s run of %s failed unexpectedly", command.mode, client_text(command.run_id))
                self._publish(WorkloadPhase(run_id=command.run_id, sut=command.sut, mode=command.mode,
                                            state="failed", t_utc_s=now_utc_s(),
                                            detail=f'{{"error": "internal error: {type(exc).__name__}"}}'))

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
        )
