"""Bus mode: ``StartRun``/``StopRun`` on ``commands``, the agent's ``WorkloadPhase`` events, ``RunCompleted``.

For each mode the director starts the phase, asks the SUT agent with ``RunWorkloadPhase`` to
run the workload, records the LoadGen window (``power_begin``/``power_end``) as
``PhaseMark(source="loadgen")``, waits for ``finished`` (stop the phase) or ``failed`` (fail
the run); no answer within ``phase_timeout_s`` aborts the run. The command handler only starts
the run on its own thread, so a ``StopRun`` behind it on the queue is handled at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlpower import topology
from mlpower.bus import Bus, Delivery, Subscription
from mlpower.errors import MlpowerError
from mlpower.schema import Message, RunCompleted, RunWorkloadPhase, StartRun, StopRun, WorkloadPhase
from mlpower.timeutil import now_utc_s

from .director import Director
from .drive import Outcome, drive
from .runner import MeasurementSession

log = logging.getLogger(__name__)

POLL_S = 0.1


def command_queue(sut: str) -> topology.QueueSpec:
    key = topology.command_key("director", sut)
    return topology.service_queue(f"director-{sut}", topology.COMMANDS_EXCHANGE, (key,))


def events_queue(lab: str, sut: str) -> topology.QueueSpec:
    # exclusive: phase events only matter to the run in progress; nothing to keep across restarts
    pattern = f"workload_phase.{topology.segment(lab)}.{topology.segment(sut)}"
    return topology.QueueSpec("", topology.EVENTS_EXCHANGE, (pattern,), durable=False, exclusive=True)


@dataclass
class _Expect:
    run_id: str
    mode: str
    done: threading.Event = field(default_factory=threading.Event)
    state: str = ""
    detail: str = ""


class BusMode:
    def __init__(self, director: Director, bus: Bus, *, phase_timeout_s: float | None = None) -> None:
        self.director, self.bus = director, bus
        self.settings = director.settings
        self.phase_timeout_s = phase_timeout_s or self.settings.phase_timeout_s
        self._subscriptions: list[Subscription] = []
        self._expect: _Expect | None = None
        self._session: MeasurementSession | None = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> BusMode:
        events = events_queue(self.settings.lab, self.settings.sut)
        self._subscriptions.append(self.bus.subscribe(events, self._on_event))
        self._subscriptions.append(self.bus.subscribe(command_queue(self.settings.sut), self._on_command))
        return self

    def stop(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        session = self._session
        if session is not None and not session.ended:
            session.abort("director stopping")
        for thread in self._threads:
            thread.join(timeout=15)

    # ----------------------------------------------------------------------- commands

    def _on_command(self, message: Message, delivery: Delivery) -> None:
        if isinstance(message, StartRun):
            self._start_run(message)
        elif isinstance(message, StopRun):
            if not self.director.stop_run(message.run_id, message.reason or "StopRun"):
                log.info("StopRun for %s: no such run in progress", message.run_id)
        else:
            log.warning("director ignores command %s", getattr(message, "type", "?"))

    def _start_run(self, command: StartRun) -> None:
        if command.sut != self.settings.sut:
            log.warning("StartRun for SUT %s reached director of %s; ignored", command.sut, self.settings.sut)
            return
        try:
            session = self.director.new_session(run_id=command.run_id or self.director.new_run_id(),
                                                benchmark=command.benchmark, scenario=command.scenario,
                                                sample_interval_s=command.sample_interval_s,
                                                settings={**command.settings, "workload": command.workload})
        except MlpowerError as exc:  # refused (busy, bad id, analyzer absent): nothing started, say why
            log.error("StartRun %s refused: %s", command.run_id, exc)
            event = RunCompleted(run_id=command.run_id or "unassigned", lab=self.settings.lab, sut=command.sut,
                                 status="failed", reason=f"refused: {exc}", t_utc_s=now_utc_s())
            self.bus.publish(event, topology.event_key(event))
            return
        self.run_in_background(session, command)

    def run_in_background(self, session: MeasurementSession, command: StartRun) -> threading.Thread:
        self._session = session
        manual = None
        if "ranging" not in command.modes:
            volts, amps = command.settings.get("voltage_range_v"), command.settings.get("current_range_a")
            manual = (float(volts), float(amps)) if volts is not None and amps is not None else None
        thread = threading.Thread(target=drive, args=(session, command.modes, self._workload_waiter(session, command),
                                                      manual), name=f"run-{session.run_id}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _workload_waiter(self, session: MeasurementSession, command: StartRun) -> Callable[[str], Outcome]:
        def wait(mode: str) -> Outcome:
            expect = _Expect(session.run_id, mode)
            with self._lock:
                self._expect = expect
            ask = RunWorkloadPhase(run_id=session.run_id, sut=self.settings.sut, mode=mode,
                                   workload=command.workload, settings=command.settings)
            self.bus.publish(ask, topology.command_key("agent", self.settings.sut))
            deadline = time.monotonic() + self.phase_timeout_s  # the clock, not a sum of polls that run late
            while not expect.done.wait(POLL_S):
                if session.ended:
                    return None
                if time.monotonic() >= deadline:
                    return ("aborted", f"no answer from the agent for {mode} within {self.phase_timeout_s:g} s")
            if expect.state == "failed":
                return ("failed", f"workload failed in {mode}: {expect.detail}")
            return None

        return wait

    # ----------------------------------------------------------------------- events

    def _on_event(self, message: Message, delivery: Delivery) -> None:
        if not isinstance(message, WorkloadPhase):
            return
        session = self._session
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
