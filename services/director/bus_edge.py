"""The director's bus edge: ``StartRun``/``StopRun`` commands in, the SUT agent's workload phases.

A ``StartRun`` becomes a ``RunPlan`` for ``Director.run``; a refused one (busy, bad id, no
analyzer) is answered at once with a ``RunStop(status="failed")`` of that run id: the end of a
run that never started (no ``run.start``), so the one end-of-run fact covers it too. While
connected, the edge is the director's ``agent``: for each mode it asks the agent with ``RunWorkloadPhase`` to run the
workload, records the LoadGen window (``power_begin``/``power_end``) as
``PhaseMark(source="loadgen")``, and returns when the agent says ``finished`` (the mode ends) or
``failed`` (the run fails). The agent sends ``AgentHeartbeat`` every ``heartbeat_s`` while it
runs a phase; ``HEARTBEATS_MISSED`` intervals without any sign of life fail the run, naming the
agent (a dead agent is seen in seconds, not at ``phase_timeout_s``, which only caps a live phase).
While the director's own consumer is cut from the broker, silence says nothing about the agent,
so the count starts again once it is back. The command handler returns as soon as the run is
started, so a ``StopRun`` behind it is handled at once.

A run of the agent's that fails or is aborted (``StopRun``, ``POST /runs/{id}/stop``, a missed
heartbeat, a lost analyzer, the director stopping or restarting) gets ``StopWorkload``, so the
workload does not run on after its run ended.

Phase events and heartbeats come through a durable, non-exclusive queue of this director's lab
and SUT: what the agent publishes while the director's consumer is away waits there.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from mlpower import topology
from mlpower.bus import Bus, Delivery, Subscription
from mlpower.errors import MlpowerError
from mlpower.logtext import client_text
from mlpower.schema import (
    AgentHeartbeat,
    Message,
    RunStop,
    RunWorkloadPhase,
    StartRun,
    StopRun,
    StopWorkload,
    WorkloadPhase,
)

from .director import Director
from .run_plan import DRIVERS, AgentWorkload, Outcome, RunPlan
from .session import MeasurementSession
from .session_states import Abort, Fail, ManualRanges, Mode

log = logging.getLogger(__name__)

POLL_S = 0.1
"""How often a waiting phase looks whether its session ended meanwhile."""
HEARTBEATS_MISSED = 3
"""Heartbeat intervals without a sign of life from the agent that fail its run."""
EVENTS_TTL_MS = 600_000
"""Phase events and heartbeats nobody consumed within 10 minutes are stale: the queue drops them."""
EVENTS_EXPIRES_MS = 86_400_000
"""The events queue of a director that is gone for a day (a test's, a lab torn down) is deleted."""


def command_queue(lab: str, sut: str) -> topology.QueueSpec:
    key = topology.command_key("director", sut, lab=lab)
    return topology.service_queue(f"director-{sut}", topology.COMMANDS_EXCHANGE, (key,), lab=lab)


def events_queue(lab: str, sut: str) -> topology.QueueSpec:
    # durable, not exclusive: events the agent publishes while this director's consumer is away
    # (a broker restart, a director restart) wait for it instead of being dropped unrouted
    patterns = tuple(topology.event_pattern(name, lab, sut) for name in ("workload_phase", "agent_heartbeat"))
    return topology.service_queue(f"director-{sut}", topology.EVENTS_EXCHANGE, patterns, lab=lab,
                                  arguments={"x-message-ttl": EVENTS_TTL_MS, "x-expires": EVENTS_EXPIRES_MS})


def plan_of(command: StartRun) -> RunPlan:
    """The plan a ``StartRun`` asks for; fixed ranges from its settings when ranging is skipped."""
    manual = None
    if "ranging" not in command.modes:
        volts, amps = command.settings.get("voltage_range_v"), command.settings.get("current_range_a")
        manual = ManualRanges(float(volts), float(amps)) if volts is not None and amps is not None else None
    workload = AgentWorkload(command.workload, dict(command.settings))
    return RunPlan(workload=workload, run_id=command.run_id,
                   benchmark=command.benchmark, scenario=command.scenario, modes=tuple(command.modes),
                   sample_interval_s=command.sample_interval_s, manual_ranges=manual,
                   settings={**command.settings, "driver": DRIVERS[AgentWorkload], "workload": workload.recorded()})


@dataclass
class _Expect:
    run_id: str
    mode: str
    last_seen_s: float
    """The director's monotonic time of the agent's last sign of life (a heartbeat or an event)."""
    done: threading.Event = field(default_factory=threading.Event)
    state: str = ""
    detail: str = ""
    pid: int | None = None


class BusEdge:
    def __init__(self, director: Director, bus: Bus, *, phase_timeout_s: float | None = None,
                 heartbeat_s: float | None = None) -> None:
        self.director, self.bus = director, bus
        self.settings = director.settings
        self.phase_timeout_s = phase_timeout_s or self.settings.phase_timeout_s
        self.heartbeat_s = heartbeat_s or self.settings.heartbeat_s
        self._subscriptions: list[Subscription] = []
        self._events: Subscription | None = None
        self._expect: _Expect | None = None
        self._asked: set[str] = set()
        self._lock = threading.Lock()

    def start(self) -> BusEdge:
        events = events_queue(self.settings.lab, self.settings.sut)
        self._events = self.bus.subscribe(events, self._on_event)
        self._subscriptions.append(self._events)
        commands = command_queue(self.settings.lab, self.settings.sut)
        self._subscriptions.append(self.bus.subscribe(commands, self._on_command))
        self.director.agent = self
        self.director.on_end(self._run_ended)
        return self

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions)

    def stop_workload(self, run_id: str, reason: str) -> None:
        """Ask the agent to stop ``run_id``'s workload (whether or not it still runs it)."""
        command = StopWorkload(run_id=run_id, sut=self.settings.sut, reason=reason)
        try:
            self.bus.publish(command, topology.command_key("agent", self.settings.sut, lab=self.settings.lab))
        except MlpowerError as exc:
            log.error("could not send StopWorkload for %s: %s", run_id, exc)

    def _run_ended(self, session: MeasurementSession) -> None:
        with self._lock:
            asked = session.run_id in self._asked
            self._asked.discard(session.run_id)
        if asked and session.status != "success":
            self.stop_workload(session.run_id, f"run {session.status}: {session.status_reason}")

    def stop(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        if self.director.agent is self:
            self.director.agent = None
        active = self.director.active
        if active is not None:
            self.director.stop_run(active.run_id, "director stopping")
        self.director.join()

    # ----------------------------------------------------------------------- commands

    def _on_command(self, message: Message, delivery: Delivery) -> None:
        if isinstance(message, StartRun):
            self._start_run(message)
        elif isinstance(message, StopRun):
            if not self.director.stop_run(message.run_id, message.reason or "StopRun"):
                log.info("StopRun for %s: no such run in progress", client_text(message.run_id))
        else:
            log.warning("director ignores command %s", client_text(str(getattr(message, "type", "?"))))

    def _start_run(self, command: StartRun) -> None:
        if command.sut != self.settings.sut:
            log.warning("StartRun for SUT %s reached director of %s; ignored", client_text(command.sut),
                        self.settings.sut)
            return
        try:
            self.director.run(plan_of(command))
        except MlpowerError as exc:  # refused (busy, bad id, analyzer absent): nothing started, say why
            log.error("StartRun %s refused: %s", client_text(command.run_id), client_text(str(exc)))
            self._refused(command, f"refused: {exc}")

    def _refused(self, command: StartRun, reason: str) -> None:
        run_id = command.run_id or "unassigned"
        active = self.director.active
        if active is not None and active.run_id == run_id:
            return  # the run of that id is in progress: its own run.stop ends it, a second one would lie
        stop = RunStop(run_id=run_id, seq=0, status="failed", reason=reason, t_utc_s=self.director.clock.now_utc_s())
        self.bus.publish(stop, topology.run_key(self.settings.lab, self.settings.sut, self.settings.analyzer_name,
                                                run_id))

    # ----------------------------------------------------------------------- the agent's phases

    def _listening(self) -> bool:
        """Whether the agent could have been heard: our consumer is attached and our asks went out."""
        unsent = int(getattr(self.bus, "pending", 0))  # RabbitMQ's spool: the ask itself may still wait there
        return (self._events is None or self._events.connected) and unsent == 0

    def run_phase(self, session: MeasurementSession, mode: Mode, workload: AgentWorkload) -> Outcome:
        clock = session.clock
        expect = _Expect(session.run_id, mode, last_seen_s=clock.monotonic_s())
        if session.ending:  # stopped while the phase started: ask nothing
            return None
        with self._lock:
            self._expect = expect
            self._asked.add(session.run_id)
        ask = RunWorkloadPhase(run_id=session.run_id, sut=self.settings.sut, mode=mode, workload=workload.request,
                               settings=workload.settings)
        self.bus.publish(ask, topology.command_key("agent", self.settings.sut, lab=self.settings.lab))
        if session.ended and session.status != "success":  # it ended as we asked: its end saw no ask yet
            self.stop_workload(session.run_id, f"run {session.status}: {session.status_reason}")
        deadline = clock.monotonic_s() + self.phase_timeout_s  # the clock, not a sum of polls that run late
        silence_s = HEARTBEATS_MISSED * self.heartbeat_s
        while not clock.wait(expect.done, POLL_S):
            if session.ended:
                return None
            now = clock.monotonic_s()
            if not self._listening():  # our own link is down: the agent's silence proves nothing yet
                expect.last_seen_s = now
            elif now - expect.last_seen_s > silence_s:
                return Fail(f"SUT agent {self.settings.sut!r} missed {HEARTBEATS_MISSED} heartbeats "
                            f"(no sign of life for {silence_s:g} s) during {mode}")
            if now >= deadline:
                return Abort(f"no answer from the agent for {mode} within {self.phase_timeout_s:g} s")
        if expect.state == "failed":
            return Fail(f"workload failed in {mode}: {expect.detail}")
        return None

    def _on_event(self, message: Message, delivery: Delivery) -> None:
        if not isinstance(message, WorkloadPhase | AgentHeartbeat):
            return
        session = self.director.active
        if session is None or session.run_id != message.run_id or session.ended:
            return
        with self._lock:
            expect = self._expect
        if expect is not None and expect.run_id == message.run_id and message.mode in (None, expect.mode):
            expect.last_seen_s = session.clock.monotonic_s()
            if isinstance(message, AgentHeartbeat):
                expect.pid = message.pid
                return
        if isinstance(message, AgentHeartbeat):
            return
        if message.state in ("power_begin", "power_end") and session.stream is not None:
            session.stream.mark(message.state, mode=message.mode, t_utc_s=message.t_utc_s, source="loadgen",
                                detail=message.detail)
        elif message.state in ("finished", "failed"):
            if expect is not None and expect.run_id == message.run_id and (message.mode in (None, expect.mode)):
                expect.state, expect.detail = message.state, message.detail
                expect.done.set()
