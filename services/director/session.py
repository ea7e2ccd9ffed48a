"""One measurement session and its side effects: ranges, sleeps, sampling, the run stream, files.

The session is driven by typed events (``session_states``) through one method, ``handle``; it
asks the transition table what the event means in its state, then does it::

    s = MeasurementSession(identity, [("analyzer1", source)], config, bus=bus, metrics=metrics)
    s.open()
    s.handle(StartPhase("ranging")); ...workload...; s.handle(StopPhase("ranging"))
    s.handle(StartPhase("testing")); ...workload...; s.handle(StopPhase("testing"))
    s.handle(Done())             # or Fail(reason) / Abort(reason)

The power-dev server turns a client's commands into these events; ``Director.run`` does the
same for HTTP and bus runs. A source that fails while sampling fails the session from a helper
thread (the recorder must not wait on the lock its own stop holds); files and documents taken so
far are kept. Time comes from the session's ``Clock``, so tests run the analyzer sleeps at once.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlpower.bus import Bus
from mlpower.errors import MlpowerError
from mlpower.runstream import RunStream, storage_reason
from mlpower.schema import SampleFlag, SourceInfo
from mlpower.timeutil import SYSTEM_CLOCK, Clock

from . import session_files
from .channels import TOTAL_STREAM
from .errors import AnalyzerLost, DirectorError, RangeError
from .ranges import testing_ranges
from .recorder import DEFAULT_PAGE_INTERVAL_S, Pager, Recorder, RecorderConfig
from .session_analyzer import ServerLog, SessionAnalyzer, analyzers_of
from .session_states import (
    END_STATUS,
    MODES,
    TERMINAL,
    Abort,
    Action,
    Done,
    Event,
    Fail,
    ManualRanges,
    Mode,
    StartPhase,
    State,
    Step,
    StopPhase,
    transition,
    trigger_of,
)
from .sources import AnalyzerSource, Reading
from .sum_stream import SumStream

log = logging.getLogger(__name__)

Ranges = tuple[float | None, float | None]


@dataclass(frozen=True)
class RefusedRange:
    """Which range could not be set, and the value (per analyzer) that was asked for."""

    quantity: Literal["voltage", "current"]
    values: tuple[str, ...]


class PhaseError(DirectorError):
    """A phase could not start or stop; ``refused`` says which range it was, when it was one."""

    def __init__(self, message: str, refused: RefusedRange | None = None) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class SessionIdentity:
    run_id: str
    lab: str = "lab"
    sut: str = "sut"
    benchmark: str = ""
    scenario: str = ""
    label: str = ""
    client_uuid: str = ""
    server_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class SessionConfig:
    results_dir: Path
    sample_interval_s: float = 1.0
    sleep_s: float = 10.0
    debug: bool = False
    page_interval_s: float = DEFAULT_PAGE_INTERVAL_S
    page_max_samples: int = 50
    settings: dict[str, Any] = field(default_factory=dict)


class MeasurementSession:
    def __init__(self, identity: SessionIdentity, sources: Sequence[tuple[str, AnalyzerSource]],
                 config: SessionConfig, *, bus: Bus | None = None, metrics: Any = None,
                 server_log: ServerLog | None = None, messages: list[dict[str, Any]] | None = None,
                 on_end: Callable[[MeasurementSession], None] | None = None, clock: Clock = SYSTEM_CLOCK,
                 analyzer_indexes: Sequence[int] | None = None) -> None:
        if not sources:
            raise DirectorError("a session needs at least one analyzer")
        self.identity, self.config, self.clock = identity, config, clock
        self.analyzers = analyzers_of(sources, analyzer_indexes)
        self.totals: dict[Mode, list[Reading]] = {"ranging": [], "testing": []}
        """Several channels: the SUT's merged stream (their sum on a common timebase) per phase."""
        self._sum: SumStream | None = None
        self._sum_pager: Pager | None = None
        self.bus, self.metrics = bus, metrics
        self.log = server_log or ServerLog(clock)
        self.messages: list[dict[str, Any]] = messages if messages is not None else []
        self.phases: dict[Mode, list[list[float]]] = {"ranging": [], "testing": []}
        self.state = State.IDLE
        self.status_reason = ""
        self.dir = config.results_dir / identity.run_id
        self.stream: RunStream | None = None
        self.manual_ranges = False
        self._on_end = on_end
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._ended = threading.Event()
        self._handlers: dict[type, Callable[[Any], None]] = {
            StartPhase: self._start, StopPhase: self._stop, Done: lambda e: self._end(e, ""),
            Fail: lambda e: self._end(e, e.reason), Abort: lambda e: self._end(e, e.reason),
        }

    # ----------------------------------------------------------------------- what it is

    @property
    def run_id(self) -> str:
        return self.identity.run_id

    def mark(self, mode: Mode) -> str:
        """The analyzer's mark of a phase (power-dev: ``<session id>_<mode>``)."""
        return f"{self.identity.run_id}_{mode}"

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    @property
    def ending(self) -> bool:
        """True once a fail or abort has begun (it may still be writing the files)."""
        return self._cancel.is_set() or self.ended

    @property
    def status(self) -> str:
        """``running`` until the end, then the run's status (``success``, ``failed``, ``aborted``)."""
        return END_STATUS.get(self.state, "running")

    def wait_ended(self, timeout_s: float | None = None) -> bool:
        """Wait (real time) until the session ended; for callers outside the session's clock."""
        return self._ended.wait(timeout_s)

    def sleep(self, seconds: float) -> bool:
        """Sleep on the session's clock; True (at once) when the session ends meanwhile."""
        return self.clock.wait(self._ended, seconds)

    def readings(self, mode: Mode, analyzer: int = 0) -> list[Reading]:
        return list(self.analyzers[analyzer].readings[mode])

    @property
    def merged(self) -> bool:
        """Several channels are one SUT measurement: their sum is published as ``TOTAL_STREAM``."""
        return len(self.analyzers) > 1

    @property
    def merge_tolerance_s(self) -> float:
        return self.config.sample_interval_s / 2

    def ranges(self, mode: Mode) -> list[Ranges]:
        return [a.ranges.get(mode, (None, None)) for a in self.analyzers]

    def _now(self) -> list[float]:
        """A phase point of server.json: ``[wall UTC, monotonic]``."""
        return [self.clock.now_utc_s(), self.clock.monotonic_s()]

    # ----------------------------------------------------------------------- open

    def open(self) -> None:
        """Create the folder, open and identify every analyzer, start the run stream."""
        if self.dir.exists():
            raise DirectorError(f"session folder {self.dir} already exists")
        for analyzer in self.analyzers:
            if self.config.sample_interval_s < analyzer.source.min_interval_s:
                raise DirectorError(f"sample interval {self.config.sample_interval_s} s is below the "
                                    f"{analyzer.source.min_interval_s} s minimum of analyzer {analyzer.name}")
        try:
            (self.dir / "power").mkdir(parents=True)
        except OSError as exc:
            raise DirectorError(storage_reason(exc, f"session folder {self.dir}")) from exc
        try:
            for analyzer in self.analyzers:
                try:
                    analyzer.source.open()
                    analyzer.identity = analyzer.identify()
                except MlpowerError:
                    self._analyzer_up(analyzer, False)
                    raise
                self._analyzer_up(analyzer, True)
                analyzer.note_start(self.clock.now_utc_s())
                self.log.info(f"analyzer {analyzer.index} ({analyzer.name}): {analyzer.identity}")
        except MlpowerError:
            self._close_sources()
            self._remove_unstarted_folder()
            raise
        try:
            self.stream = self._open_stream(self.analyzers[0])
        except OSError as exc:
            self._close_sources()
            self._remove_unstarted_folder()
            raise DirectorError(storage_reason(exc, "documents.jsonl")) from exc
        if self.stream.log_error is not None:  # the disk filled before the run began
            self.stream.stop("failed", self.stream.log_error, output_dir=str(self.dir))
            self._close_sources()
            raise DirectorError(self.stream.log_error)
        self.stream.on_log_error = self._storage_failed
        for analyzer in self.analyzers:
            self.stream.descriptor(stream=analyzer.name, source=analyzer.source.info,
                                   sample_interval_s=self.config.sample_interval_s)
        if self.merged:
            infos = [a.source.info for a in self.analyzers]
            total = SourceInfo(kind="merged", model="sum of " + " + ".join(a.name for a in self.analyzers),
                               address=", ".join(f"{a.name}={i.address}#{i.channel}"
                                                 for a, i in zip(self.analyzers, infos, strict=True)),
                               channel=0, tier="official" if all(i.tier == "official" for i in infos)
                               else "informative")
            self.stream.descriptor(stream=TOTAL_STREAM, source=total, sample_interval_s=self.config.sample_interval_s)
        self._set_metrics_run("idle")

    def _remove_unstarted_folder(self) -> None:
        """A session that never started leaves nothing behind: ``open`` made this folder a moment ago."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def _open_stream(self, first: SessionAnalyzer) -> RunStream:
        return RunStream(self.bus, {
            "lab": self.identity.lab, "sut": self.identity.sut, "analyzer": first.name, "run_id": self.run_id,
            "benchmark": self.identity.benchmark, "scenario": self.identity.scenario,
            "settings": {**self.config.settings, "sample_interval_s": self.config.sample_interval_s,
                         "analyzer_sleep_s": self.config.sleep_s, "debug": self.config.debug},
            "t_utc_s": self.clock.now_utc_s(),
            "tier": "official" if all(a.source.info.tier == "official" for a in self.analyzers) else "informative",
            "compliant_durations": not self.config.debug,
        }, log_path=self.dir / "documents.jsonl")

    def _storage_failed(self, reason: str) -> None:
        """documents.jsonl could not be written (disk full): the run fails, from a helper thread
        (the caller may be a recorder's publisher, which the end waits for)."""
        self._fail_in_background(reason)

    def _fail_in_background(self, reason: str) -> None:
        threading.Thread(target=self.handle, args=(Fail(reason),), name=f"fail-{self.run_id}", daemon=True).start()

    def _analyzer_up(self, analyzer: SessionAnalyzer, up: bool) -> None:
        if self.metrics is not None:
            self.metrics.set_analyzer_up(analyzer.name, self.identity.sut, up)

    def _set_metrics_run(self, state: str) -> None:
        if self.metrics is not None:
            self.metrics.set_run(self.run_id, self.identity.sut, self.identity.benchmark, self.identity.scenario,
                                 state)

    # ----------------------------------------------------------------------- events

    def handle(self, event: Event) -> None:
        """Do what ``event`` means in the current state; ``InvalidTransition`` when it is out of order."""
        self._handlers[type(event)](event)

    def _step(self, event: StartPhase | StopPhase) -> Step | None:
        """What a phase event means in the current state; None for a repeat (nothing to do)."""
        if event.mode not in MODES:
            raise PhaseError(f"unknown mode {event.mode!r}")
        step = transition(self.state, trigger_of(event))
        return None if step.action is Action.NONE else step

    def _start(self, event: StartPhase) -> None:
        mode = event.mode
        with self._lock:
            step = self._step(event)
            if step is None:
                return
            phase = [self._now()]
            ranges = self._phase_ranges(mode, event.manual_ranges)  # raises before any state change
            previous, self.state = self.state, step.state
            try:
                self._set_ranges(mode, ranges)
            except MlpowerError:
                self.state = previous
                raise
            if self.clock.wait(self._cancel, self.config.sleep_s):
                raise PhaseError(f"session ended while starting {mode}")
            mark = self.mark(mode)
            for analyzer in self.analyzers:
                try:
                    analyzer.source.start(mark)
                except MlpowerError as exc:  # the analyzer refused or vanished: the run cannot go on
                    if isinstance(exc, AnalyzerLost):
                        self._analyzer_up(analyzer, False)
                    self.handle(Fail(f"analyzer {analyzer.name} did not start {mode}: {exc}"))
                    raise PhaseError(str(exc)) from exc
                analyzer.console.add(self.clock.now_utc_s(), f"Go with mark '{mark}'")
            assert self.stream is not None
            self.stream.mark(f"{mode}_begin", mode=mode, t_utc_s=self.clock.now_utc_s())
            self._start_sum(mode)
            for analyzer in self.analyzers:
                self._start_recorder(analyzer, mode)
            phase.append(self._now())
            self.phases[mode] = phase
            self._set_metrics_run(mode)
            self.log.info(f"{mode} started (mark {mark}, ranges {self.ranges(mode)})")

    def _phase_ranges(self, mode: Mode, manual: ManualRanges | None) -> list[Ranges]:
        n = len(self.analyzers)
        if mode == "ranging":
            return [(None, None)] * n
        if manual is not None:
            if not manual.valid:
                raise PhaseError(f"manual ranges must be positive: {manual.voltage_v}, {manual.current_a}",
                                 RefusedRange("voltage", (str(manual.voltage_v),) * n))
            self.manual_ranges = True
            return [(manual.voltage_v, manual.current_a)] * n
        result: list[Ranges] = []
        for analyzer in self.analyzers:
            try:
                model = analyzer.source.info.model or "WT310E"
                result.append(testing_ranges(analyzer.readings["ranging"], model=model))
            except RangeError as exc:
                raise PhaseError(str(exc), RefusedRange("voltage", ("-1",) * n)) from exc
        return result

    def _set_ranges(self, mode: Mode, ranges: list[Ranges]) -> None:
        for analyzer, (volts, amps) in zip(self.analyzers, ranges, strict=True):
            try:
                analyzer.source.set_ranges(volts, amps)
            except RangeError as exc:
                raise PhaseError(str(exc), RefusedRange("current", (str(amps),))) from exc
        for analyzer, asked in zip(self.analyzers, ranges, strict=True):
            # a multichannel PTDaemon sets one range for its channels once all have asked: record what it set
            volts, amps = getattr(analyzer.source, "applied_ranges", None) or asked
            analyzer.ranges[mode] = (volts, amps)
            analyzer.note_ranges(self.clock.now_utc_s(), volts, amps)

    def _start_sum(self, mode: Mode) -> None:
        if not self.merged:
            return
        config = RecorderConfig(self.config.sample_interval_s, self.config.page_interval_s,
                                self.config.page_max_samples)
        pager = Pager(self.stream, TOTAL_STREAM, mode, config, clock=self.clock)
        self._sum_pager = pager
        self._sum = SumStream(len(self.analyzers), self.merge_tolerance_s, lambda _row, total: pager.add(total))

    def _end_sum(self, mode: Mode) -> None:
        """After every recorder stopped: the rest of the merged rows, published before the end mark."""
        if self._sum is not None and self._sum_pager is not None:
            self.totals[mode] = self._sum.close()
            self._sum_pager.close()
        self._sum = self._sum_pager = None

    def _start_recorder(self, analyzer: SessionAnalyzer, mode: Mode) -> None:
        position = self.analyzers.index(analyzer)
        total = self._sum
        if self.metrics is not None:
            self.metrics.prepare(analyzer.name, analyzer.source.info.channel, self.identity.sut)

        def on_sample(stream: str, reading: Reading) -> None:
            analyzer.note_sample(reading, mode)
            if total is not None:
                total.add(position, reading)
            if self.metrics is not None:
                self.metrics.observe(stream, analyzer.source.info.channel, self.identity.sut, reading)

        def on_lost(reason: str) -> None:
            self._analyzer_up(analyzer, False)
            self._fail_in_background(f"analyzer {analyzer.name} lost: {reason}")

        config = RecorderConfig(self.config.sample_interval_s, self.config.page_interval_s,
                                self.config.page_max_samples)
        extra = SampleFlag.AUTO_RANGE if mode == "ranging" else 0
        if analyzer.source.info.kind in ("nvml", "rapl"):
            extra |= SampleFlag.SOFTWARE_METER
        analyzer.recorder = Recorder(analyzer.source, analyzer.name, mode, self.stream, config,
                                     on_sample=on_sample, on_lost=on_lost, extra_flags=int(extra), clock=self.clock)
        analyzer.recorder.start()

    def _stop(self, event: StopPhase) -> None:
        mode = event.mode
        with self._lock:
            step = self._step(event)
            if step is None:
                return
            self.state = step.state
            # "ranging_done": a pause before testing is no analyzer falling silent during a phase
            self._set_metrics_run(self.state.value)
            self.phases[mode].append(self._now())
            self.clock.wait(self._cancel, self.config.sleep_s)
            try:
                self._end_phase(mode)
            except OSError as exc:  # the phase's files could not be written: the run cannot be trusted
                reason = storage_reason(exc, f"the {mode} files")
                self.handle(Fail(reason))
                raise PhaseError(reason) from exc
            self.phases[mode].append(self._now())
            self.log.info(f"{mode} stopped: {sum(len(a.readings[mode]) for a in self.analyzers)} samples")

    def _end_phase(self, mode: Mode) -> None:
        """Stop the recorders and the analyzers, and write this phase's files (also on failure)."""
        for analyzer in self.analyzers:
            if analyzer.recorder is not None:
                analyzer.recorder.stop()
                analyzer.recorder = None
                try:
                    analyzer.source.stop()
                except Exception as exc:  # a dead analyzer must not stop the files from being written
                    self.log.error(f"analyzer {analyzer.name} stop: {exc}")
                analyzer.note_completed(self.clock.now_utc_s(), mode)
        self._end_sum(mode)
        if self.metrics is not None:
            self.metrics.idle(self.identity.sut)
        if self.stream is not None and not self.ended:
            self.stream.mark(f"{mode}_end", mode=mode, t_utc_s=self.clock.now_utc_s())
        session_files.write_phase_files(self, mode)

    # ----------------------------------------------------------------------- ending

    def _end(self, event: Done | Fail | Abort, reason: str) -> None:
        if not isinstance(event, Done):
            self._cancel.set()  # cut a start/stop sleep short
        with self._lock:
            if self.state in TERMINAL:
                return
            running: Mode | None = next((m for m in MODES if self.state.value == m), None)
            self.state = transition(self.state, trigger_of(event)).state
            status = END_STATUS[self.state]
            self.status_reason = reason
            unwritten: list[str] = []  # files a full disk refused: the run is not a success then

            def write(what: str, action: Callable[[], None]) -> None:
                try:
                    action()
                except OSError as exc:
                    unwritten.append(storage_reason(exc, what))
                    self.log.error(unwritten[-1])

            def fail_if_unwritten() -> None:
                nonlocal status, reason
                if unwritten and status == "success":
                    status, reason = "failed", unwritten[0]
                    self.state, self.status_reason = State.FAILED, reason
                    self.log.error(f"session {status}: {reason}")

            if running is not None:
                write(f"the {running} files", lambda: self._end_phase(running))
                self.phases[running].append(self._now())
            if status != "success":
                self.log.error(f"session {status}: {reason}")
            if not (self.dir / "power" / "ptd_logs.txt").exists():
                write("power/ptd_logs.txt", lambda: session_files.write_ptd_logs(self))
            self._restore_ranges()
            write("samples.parquet", lambda: session_files.write_parquet(self, status, reason))
            fail_if_unwritten()
            self.log.info(f"session {self.run_id} {status}")
            write("power/server.log", lambda: session_files.write_server_log(self))
            write("power/server.json", lambda: session_files.write_server_json(self, status))
            fail_if_unwritten()  # server.log or server.json itself: the record is incomplete
            self._close_sources()
            if self.stream is not None:
                self.stream.stop(status, reason, output_dir=str(self.dir))
            self._ended.set()
            self._set_metrics_run(status)
        if self._on_end is not None:
            self._on_end(self)

    def _restore_ranges(self) -> None:
        for analyzer in self.analyzers:
            try:
                analyzer.restore_ranges()
            except Exception as exc:  # a dead analyzer must not stop the files from being written
                self.log.error(f"analyzer {analyzer.name}: restoring ranges: {exc}")

    def _close_sources(self) -> None:
        for analyzer in self.analyzers:
            try:
                analyzer.source.close()
            except Exception as exc:  # a dead analyzer must not stop the files from being written
                self.log.error(f"analyzer {analyzer.name} close: {exc}")
