"""The director: one analyzer set, at most one session at a time, whoever asks for it.

A power-dev client's session is opened here (``open_session``) and then driven by the power-dev
server, event by event. HTTP and the bus hand the director a ``RunPlan`` and it drives the
session itself (``run``): start each mode, let the workload run (timed, or by the SUT agent
through the bus edge registered as ``agent``), stop it, then done, fail or abort. A run over the
bus thus cannot trample one started by a power-dev client. When a session ends, for any reason,
its ``RunStop`` (the run's last document) is the end-of-run fact on the bus.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpower.bus import Bus
from mlpower.errors import MlpowerError
from mlpower.ptdformat import MULTICHANNEL_DEVICE_TYPES
from mlpower.timeutil import SYSTEM_CLOCK, Clock

from .channels import ChannelSpec, analyzer_indexes
from .errors import DirectorError
from .metrics import DirectorMetrics
from .outputs import session_id
from .ptd_channels import MultiChannelPtd, PtdChannelSource
from .ptd_source import PtdSource
from .run_plan import AgentWorkload, PhaseRunner, RunPlan, TimedPhases, TimedWorkload
from .session import MeasurementSession, SessionConfig, SessionIdentity
from .session_analyzer import ServerLog
from .session_states import Abort, Done, Fail, StartPhase, StopPhase
from .settings import DirectorSettings
from .sources import AnalyzerSource, open_source, parse_resource
from .wt300_elements import ElementSource, MultiElementMeter
from .wt310e import WT310E

log = logging.getLogger(__name__)

SourceFactory = Callable[[str, float], AnalyzerSource]
"""(resource, sample_interval_s) -> an unopened source."""
RUN_ID_RE = r"^[A-Za-z0-9_\-]{1,128}$"


class Busy(DirectorError):
    """A session is already running; the director measures one run at a time."""


class Director:
    def __init__(self, settings: DirectorSettings, *, bus: Bus | None = None,
                 metrics: DirectorMetrics | None = None, source_factory: SourceFactory | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.bus = bus
        self.clock = clock
        self.metrics = metrics or DirectorMetrics(settings.sample_interval_s)
        # analyzer name -> why the last probe could not open it (empty: every one opened); /healthz
        self.analyzer_problems: dict[str, str] = {}
        self.agent: PhaseRunner | None = None
        """Runs ``AgentWorkload`` modes: the bus edge, while it is connected."""
        self._timed = TimedPhases()
        self._source_factory = source_factory or self.open_source
        self._lock = threading.Lock()
        self.active: MeasurementSession | None = None
        self.last: MeasurementSession | None = None
        self._listeners: list[Callable[[MeasurementSession], None]] = []
        self._drivers: list[threading.Thread] = []

    def open_source(self, resource: str, interval_s: float, channels: tuple[int, ...] = ()) -> AnalyzerSource:
        """The configured source, asked to update at the session's sample interval; ``channels``: the
        channels a multichannel PTDaemon reads (its device type and ``-c <first>,<count>``)."""
        kind = parse_resource(resource).kind
        options: dict[str, Any] = {}
        if kind in ("visa", "serial"):
            options["update_interval_s"] = interval_s  # the meter's own update rate (:RATE)
        elif kind in ("nvml", "rapl"):
            options["interval_s"] = interval_s
        elif kind == "ptd":
            options["interval_ms"] = int(round(interval_s * 1000))
            if self.settings.ptd_launch:
                options.update(launch=True, device_type=self.settings.ptd_device_type,
                               device_port=self.settings.ptd_device_port,
                               interface_flag=self.settings.ptd_interface_flag)
                if self.settings.ptd_command:
                    options["ptd_command"] = self.settings.ptd_command
            if channels:
                device_type = self.settings.ptd_device_type
                options.update(device_type=device_type if device_type in MULTICHANNEL_DEVICE_TYPES else 77,
                               channel=(min(channels), max(channels) - min(channels) + 1))
        return open_source(resource, **options)

    def _open_channels(self, channels: tuple[ChannelSpec, ...], interval_s: float) -> list[AnalyzerSource]:
        """A source per channel. Elements of one WT3xx meter (several channels on one VISA or serial
        resource) share one connection (``wt300_elements``): the meter has one item list and one update."""
        shared: dict[str, list[ElementSource] | list[PtdChannelSource]] = {}
        if self._source_factory == self.open_source:
            groups: dict[str, list[int]] = {}
            for channel in channels:
                groups.setdefault(channel.resource, []).append(channel.element)
            for resource, elements in groups.items():
                kind = parse_resource(resource).kind
                if len(elements) > 1 and kind in ("visa", "serial"):
                    driver = self.open_source(resource, interval_s)
                    assert isinstance(driver, WT310E)
                    shared[resource] = MultiElementMeter(driver, tuple(elements)).sources()
                elif len(elements) > 1 and kind == "ptd":
                    ptd = self.open_source(resource, interval_s, channels=tuple(elements))
                    assert isinstance(ptd, PtdSource)
                    shared[resource] = MultiChannelPtd(ptd, tuple(elements)).sources()
        return [shared[c.resource].pop(0) if c.resource in shared else self._source_factory(c.address, interval_s)
                for c in channels]

    def on_end(self, listener: Callable[[MeasurementSession], None]) -> None:
        self._listeners.append(listener)

    # ----------------------------------------------------------------------- sessions

    def open_session(self, *, run_id: str = "", label: str = "", client_uuid: str = "", benchmark: str = "",
                     scenario: str = "", sample_interval_s: float | None = None, server_log: ServerLog | None = None,
                     messages: list[dict[str, Any]] | None = None, settings: dict[str, Any] | None = None,
                     ) -> MeasurementSession:
        """Open a session on the configured analyzers; ``Busy`` while another one runs."""
        channels = self.settings.channels
        if not channels:
            raise DirectorError("no analyzer configured (MLPOWER_ANALYZER / --analyzer)")
        run_id = run_id or session_id(self.clock.now_utc_s(), label)
        if not re.match(RUN_ID_RE, run_id):
            raise DirectorError(f"invalid run id {run_id!r}: letters, digits, '-' and '_' only")
        interval = sample_interval_s or self.settings.sample_interval_s
        if interval < 0.1:
            raise DirectorError(f"sample interval {interval} s is below the analyzer's 0.1 s minimum")
        with self._lock:
            if self.busy:
                assert self.active is not None
                raise Busy(f"session {self.active.run_id} is running")
            sources = list(zip((c.name for c in channels), self._open_channels(channels, interval), strict=True))
            config = SessionConfig(
                results_dir=Path(self.settings.results_dir), sample_interval_s=interval, sleep_s=self.settings.sleep_s,
                debug=self.settings.debug, page_interval_s=self.settings.page_interval_s,
                page_max_samples=self.settings.page_max_samples, settings=dict(settings or {}),
            )
            identity = SessionIdentity(run_id=run_id, lab=self.settings.lab, sut=self.settings.sut,
                                       benchmark=benchmark, scenario=scenario, label=label, client_uuid=client_uuid)
            self.metrics.interval_s = interval
            session = MeasurementSession(identity, sources, config, bus=self.bus, metrics=self.metrics,
                                         server_log=server_log, messages=messages, on_end=self._ended,
                                         clock=self.clock, analyzer_indexes=analyzer_indexes(channels))
            session.open()
            self.analyzer_problems.clear()  # every analyzer just opened
            self.active = self.last = session
            return session

    def probe_analyzers(self) -> dict[str, bool] | None:
        """Between runs: open and close each analyzer, so ``mlpower_analyzer_up`` tells the truth when
        no session reads it. None when a session runs (its samples keep the gauge current)."""
        # one probe per analyzer (the channels on one resource are one meter or one PTDaemon); its
        # answer is each of its channels' (the gauge is per channel name, as a session sets it)
        groups: dict[str, list[ChannelSpec]] = {}
        for channel in self.settings.channels:
            groups.setdefault(channel.resource, []).append(channel)
        found: dict[str, bool] = {}
        with self._lock:  # a session cannot open the instrument while the probe holds it
            if self.busy:
                return None
            for resource, members in groups.items():
                name = members[0].name
                try:
                    if len(members) > 1 and self._source_factory == self.open_source:
                        elements = tuple(c.element for c in members)
                        source = self.open_source(resource, self.settings.sample_interval_s,
                                                  channels=elements if parse_resource(resource).kind == "ptd" else ())
                    else:
                        source = self._source_factory(members[0].address, self.settings.sample_interval_s)
                    try:
                        source.open()
                        found[name] = True
                    finally:
                        source.close()
                except Exception as exc:  # any failure to open is the answer "down", never a crash
                    if name not in self.analyzer_problems:  # said once, not every probe
                        log.warning("analyzer %s (%s) cannot be opened: %s", name, resource, exc)
                    found[name] = False
                    self.analyzer_problems[name] = " ".join(str(exc).split())[:300] or type(exc).__name__
                else:
                    self.analyzer_problems.pop(name, None)
                for channel in members:
                    found[channel.name] = found[name]
                    if channel.name != name:
                        if name in self.analyzer_problems:
                            self.analyzer_problems[channel.name] = self.analyzer_problems[name]
                        else:
                            self.analyzer_problems.pop(channel.name, None)
                    self.metrics.set_analyzer_up(channel.name, self.settings.sut, found[name])
        return found

    @property
    def busy(self) -> bool:
        return self.active is not None and not self.active.ended

    def run(self, plan: RunPlan) -> MeasurementSession:
        """Open a session for ``plan`` and drive it on its own thread; returns the opened session."""
        runner = self._runner(plan)
        session = self.open_session(run_id=plan.run_id or self.new_run_id(), benchmark=plan.benchmark,
                                    scenario=plan.scenario, sample_interval_s=plan.sample_interval_s,
                                    settings=plan.settings)
        thread = threading.Thread(target=self._drive, args=(session, plan, runner), name=f"run-{session.run_id}",
                                  daemon=True)
        self._drivers = [t for t in self._drivers if t.is_alive()] + [thread]
        thread.start()
        return session

    def _runner(self, plan: RunPlan) -> PhaseRunner:
        if isinstance(plan.workload, TimedWorkload):
            return self._timed
        assert isinstance(plan.workload, AgentWorkload)
        if self.agent is None:
            raise DirectorError("a workload run needs the SUT agent, and this director has no bus")
        return self.agent

    def _drive(self, session: MeasurementSession, plan: RunPlan, runner: PhaseRunner) -> None:
        try:
            for mode in plan.modes:
                session.handle(StartPhase(mode, plan.manual_ranges if mode == "testing" else None))
                outcome = runner.run_phase(session, mode, plan.workload)
                if session.ending:
                    return
                if outcome is not None:
                    session.handle(outcome)
                    return
                session.handle(StopPhase(mode))
            session.handle(Done())
        except MlpowerError as exc:
            if session.ending:  # stopped or failed meanwhile (which cut the step short): that is the outcome
                return
            log.error("run %s: %s", session.run_id, exc)
            session.handle(Fail(str(exc)))

    def join(self, timeout_s: float = 15.0) -> None:
        """Wait for the runs this director drives to finish (after they were stopped)."""
        for thread in self._drivers:
            thread.join(timeout_s)

    def new_run_id(self) -> str:
        return f"{session_id(self.clock.now_utc_s(), '')}_{uuid.uuid4().hex[:6]}"

    def _ended(self, session: MeasurementSession) -> None:
        for listener in self._listeners:
            listener(session)

    def stop_run(self, run_id: str, reason: str = "stopped") -> bool:
        session = self.active
        if session is None or session.ended or session.run_id != run_id:
            return False
        session.handle(Abort(reason))
        return True

    # ----------------------------------------------------------------------- what is on disk

    def run_dir(self, run_id: str) -> Path:
        if not re.match(RUN_ID_RE, run_id):
            raise DirectorError(f"invalid run id {run_id!r}")
        return Path(self.settings.results_dir) / run_id

    def run_status(self, run_id: str) -> dict[str, Any] | None:
        """A run's state and status: ``running`` until its end is complete (files written, the end
        published on the bus), then what its ``server.json`` says."""
        session = self.active
        if session is not None and session.run_id == run_id and not session.ended:
            return {"run_id": run_id, "state": session.state.value, "status": "running", "reason": "",
                    "output_dir": str(session.dir)}
        folder = self.run_dir(run_id)
        server_json = folder / "power" / "server.json"
        if not server_json.is_file():
            if session is not None and session.run_id == run_id:  # ended, but a full disk refused server.json
                return {"run_id": run_id, "state": "ended", "status": session.status,
                        "reason": session.status_reason, "output_dir": str(session.dir)}
            return None
        try:
            extra = json.loads(server_json.read_text(encoding="utf-8")).get("mlpower", {})
        except (OSError, json.JSONDecodeError):
            extra = {}
        return {"run_id": run_id, "state": "ended", "status": extra.get("status", "unknown"),
                "reason": extra.get("reason", ""), "output_dir": str(folder)}

    def list_runs(self) -> list[dict[str, Any]]:
        base = Path(self.settings.results_dir)
        runs = []
        if base.is_dir():
            for folder in sorted(p for p in base.iterdir() if p.is_dir()):
                try:
                    status = self.run_status(folder.name)
                except DirectorError:
                    continue
                if status is not None:
                    runs.append(status)
        active = self.active
        if active is not None and not active.ended and all(r["run_id"] != active.run_id for r in runs):
            runs.append(self.run_status(active.run_id) or {})
        return runs
