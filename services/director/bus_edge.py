"""The director's bus edge: ``StartRun``/``StopRun`` commands in, the SUT agent's workload phases.

A ``StartRun`` becomes a ``RunPlan`` for ``Director.run``; a refused one (busy, bad id, no
analyzer) is answered at once with ``RunCompleted(status="failed")``. While connected, the edge
is the director's ``agent``: for each mode it asks the agent with ``RunWorkloadPhase`` to run the
workload, records the LoadGen window (``power_begin``/``power_end``) as
``PhaseMark(source="loadgen")``, and returns when the agent says ``finished`` (the mode ends) or
``failed`` (the run fails); no answer within ``phase_timeout_s`` aborts the run. The command
handler returns as soon as the run is started, so a ``StopRun`` behind it is handled at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from mlpower import topology
from mlpower.bus import Bus, Delivery, Subscription
from mlpower.errors import MlpowerError
from mlpower.logtext import client_text
from mlpower.schema import Message, RunCompleted, RunWorkloadPhase, StartRun, StopRun, WorkloadPhase

from .director import Director
from .run_plan import DRIVERS, AgentWorkload, Outcome, RunPlan
from .session import MeasurementSession
from .session_states import Abort, Fail, ManualRanges, Mode

log = logging.getLogger(__name__)

POLL_S = 0.1
"""How often a waiting phase looks whether its session ended meanwhile."""


def command_queue(lab: str, sut: str) -> topology.QueueSpec:
    key = topology.command_key("director", sut, lab=lab)
    return topology.service_queue(f"director-{sut}", topology.COMMANDS_EXCHANGE, (key,), lab=lab)


def events_queue(lab: str, sut: str) -> topology.QueueSpec:
    # exclusive: phase events only matter to the run in progress; nothing to keep across restarts
    pattern = topology.event_pattern("workload_phase", lab, sut)
    return topology.QueueSpec("", topology.EVENTS_EXCHANGE, (pattern,), durable=False, exclusive=True)


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
    done: threading.Event = field(default_factory=threading.Event)
    state: str = ""
    detail: str = ""


class BusEdge:
    def __init__(self, director: Director, bus: Bus, *, phase_timeout_s: float | None = None) -> None:
        self.director, self.bus = director, bus
        self.settings = director.settings
        self.phase_timeout_s = phase_timeout_s or self.settings.phase_timeout_s
        self._subscriptions: list[Subscription] = []
        self._expect: _Expect | None = None
        self._lock = threading.Lock()

    def start(self) -> BusEdge:
        events = events_queue(self.settings.lab, self.settings.sut)
        self._subscriptions.append(self.bus.subscribe(events, self._on_event))
        commands = command_queue(self.settings.lab, self.settings.sut)
        self._subscriptions.append(self.bus.subscribe(commands, self._on_command))
        self.director.agent = self
        return self

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
            event = RunCompleted(run_id=command.run_id or "unassigned", lab=self.settings.lab, sut=command.sut,
                                 status="failed", reason=f"refused: {exc}", t_utc_s=self.director.clock.now_utc_s())
            self.bus.publish(event, topology.event_key(event))

    # ----------------------------------------------------------------------- the agent's phases

    def run_phase(self, session: MeasurementSession, mode: Mode, workload: AgentWorkload) -> Outcome:
        expect = _Expect(session.run_id, mode)
        with self._lock:
            self._expect = expect
        ask = RunWorkloadPhase(run_id=session.run_id, sut=self.settings.sut, mode=mode, workload=workload.request,
                               settings=workload.settings)
        self.bus.publish(ask, topology.command_key("agent", self.settings.sut, lab=self.settings.lab))
        clock = session.clock
        deadline = clock.monotonic_s() + self.phase_timeout_s  # the clock, not a sum of polls that run late
        while not clock.wait(expect.done, min(POLL_S, max(0.0, deadline - clock.monotonic_s()))):
            if session.ended:
                return None
            if clock.monotonic_s() >= deadline:
                return Abort(f"no answer from the agent for {mode} within {self.phase_timeout_s:g} s")
        if expect.state == "failed":
            return Fail(f"workload failed in {mode}: {expect.detail}")
        return None

    def _on_event(self, message: Message, delivery: Delivery) -> None:
        if not isinstance(message, WorkloadPhase):
            return
        session = self.director.active
        if session is None or session.run_id != message.run_id or session.ended:
            return
        if message.state in ("power_begin", "power_end") and session.stream is not None:
            session.stream.mark(message.state, mode=message.mode, t_utc_s=message.t_utc_s, source="loadgen",
                                detail=message.detail)
        elif message.state in ("finished", "failed"):
            with self._lock:
                expect = self._expect
            if expect is not None and expect.run_id == message.run_id and (message.mode in (None, expect.mode)):
                expect.state, expect.detail = message.state, message.detail
                expect.done.set()
