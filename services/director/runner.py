"""One measurement session with its side effects: ranges, sleeps, sampling, run stream, files.

``MeasurementSession`` asks ``session.transition`` what an event means in the current state and
then does it. The power-dev server, bus mode and the HTTP API all drive this one class:

    s = MeasurementSession(identity, [("analyzer1", source)], config, bus=bus, metrics=metrics)
    s.open()
    s.start("ranging"); ...workload...; s.stop("ranging")
    s.start("testing"); ...workload...; s.stop("testing")
    s.done()                     # or s.fail(reason) / s.abort(reason)

A source that fails while sampling fails the session from a helper thread (the recorder must
not wait on the lock its own stop holds); files and documents taken so far are kept.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpower.bus import Bus
from mlpower.errors import MlpowerError
from mlpower.runstream import RunStream, storage_reason
from mlpower.schema import SampleFlag
from mlpower.timeutil import now_utc_s

from . import outputs
from .errors import AnalyzerLost, DirectorError, RangeError
from .ptdaemon import identify_checks_uncertainty
from .ranges import testing_ranges
from .recorder import Recorder, RecorderConfig
from .session import TERMINAL, Action, Event, State, transition
from .sources import AnalyzerSource, Reading

log = logging.getLogger(__name__)

PTD_SAMPLE_INTERVAL_S = 1.0
YOKOGAWA_DEVICE_TYPES = {"WT210": 8, "WT310": 49, "WT310E": 49, "WT330": 52, "WT330E": 52, "WT332E": 52,
                         "WT333E": 52}


class PhaseError(DirectorError):
    """A phase could not start or stop; ``reply`` is the power-dev reply text for it."""

    def __init__(self, message: str, reply: str = "Error") -> None:
        super().__init__(message)
        self.reply = reply


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
    page_interval_s: float = 1.0
    page_max_samples: int = 50
    settings: dict[str, Any] = field(default_factory=dict)


class ServerLog:
    """server.log lines (``ptd-server <asctime> [LEVEL] message``), mirrored to Python logging."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def add(self, level: str, message: str, t_utc_s: float | None = None) -> None:
        with self._lock:
            self._lines.append(outputs.server_log_line(now_utc_s() if t_utc_s is None else t_utc_s, level, message))
        log.log(logging.getLevelName(level), "%s", message)

    def info(self, message: str) -> None:
        self.add("INFO", message)

    def error(self, message: str) -> None:
        self.add("ERROR", message)

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)


class _Analyzer:
    """One source of the session and what the director keeps about it."""

    def __init__(self, index: int, name: str, source: AnalyzerSource) -> None:
        self.index, self.name, self.source = index, name, source
        self.identity = ""
        self.console = outputs.ConsoleLog()
        self.readings: dict[str, list[Reading]] = {"ranging": [], "testing": []}
        self.ranges: dict[str, tuple[float | None, float | None]] = {}
        self.recorder: Recorder | None = None

    @property
    def label(self) -> str:
        return self.source.info.model or self.source.info.kind

    def ptd_messages(self) -> list[dict[str, str]] | None:
        """The real PTDaemon command/reply log when the source drives PTDaemon (None otherwise)."""
        found = getattr(self.source, "ptd_messages", None)
        found = found() if callable(found) else found
        if not found:
            return None
        return [m if isinstance(m, dict) else {"cmd": m[0], "reply": m[1]} for m in found]

    def identify(self) -> str:
        # PTDaemon's open() already sent Identify (Hello, Identify, RR): a second one would break the
        # command sequence the compliance checker reads, so its recorded reply is reused
        for message in self.ptd_messages() or []:
            if message["cmd"] == "Identify":
                return str(message["reply"])
        return self.source.identify()

    def ptd_console(self) -> str | None:
        """A launched PTDaemon's own console (None for other sources, or a PTDaemon we only connected to)."""
        found = getattr(self.source, "console_text", None)
        found = found() if callable(found) else found
        return found if isinstance(found, str) and found else None

    def ptd_stop(self, mark: str) -> Any:
        """PTDaemon's stop result for ``mark`` (RL data, Watts/Uncertainty replies), if the source has one."""
        found = getattr(self.source, "last_stop", None)
        return found if found is not None and getattr(found, "mark", None) == mark else None

    def ptd_config(self) -> dict[str, Any]:
        if self.source.info.kind == "ptdaemon":
            src: Any = self.source
            return {"command": list(getattr(src, "argv", None) or []), "device_type": getattr(src, "device_type", 0),
                    "interface_flag": getattr(src, "interface_flag", ""), "dc_flag": getattr(src, "dc_flag", None),
                    "device_port": getattr(src, "device_port", ""),
                    "channel": list(src.channel) if getattr(src, "channel", None) else None}
        model = self.source.info.model.upper().removeprefix("YOKOGAWA")
        return {"command": [], "device_type": YOKOGAWA_DEVICE_TYPES.get(model, 0), "interface_flag": "",
                "dc_flag": None, "device_port": self.source.info.address, "channel": None}


class MeasurementSession:
    def __init__(self, identity: SessionIdentity, sources: Sequence[tuple[str, AnalyzerSource]],
                 config: SessionConfig, *, bus: Bus | None = None, metrics: Any = None,
                 server_log: ServerLog | None = None, messages: list[dict[str, Any]] | None = None,
                 on_end: Callable[[MeasurementSession], None] | None = None) -> None:
        if not sources:
            raise DirectorError("a session needs at least one analyzer")
        self.identity, self.config = identity, config
        self.analyzers = [_Analyzer(i, name, source) for i, (name, source) in enumerate(sources, start=1)]
        self.bus, self.metrics = bus, metrics
        self.log = server_log or ServerLog()
        self.messages: list[dict[str, Any]] = messages if messages is not None else []
        self.phases: dict[str, list[list[float]]] = {"ranging": [], "testing": []}
        self.state = State.IDLE
        self.status_reason = ""
        self.dir = config.results_dir / identity.run_id
        self.stream: RunStream | None = None
        self._on_end = on_end
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._opened = False
        self._ended = threading.Event()
        self.manual_ranges = False

    # ----------------------------------------------------------------------- properties

    @property
    def run_id(self) -> str:
        return self.identity.run_id

    @property
    def mark_prefix(self) -> str:
        return self.identity.run_id

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def wait_ended(self, timeout_s: float | None = None) -> bool:
        return self._ended.wait(timeout_s)

    def readings(self, mode: str, analyzer: int = 0) -> list[Reading]:
        return list(self.analyzers[analyzer].readings[mode])

    def ranges(self, mode: str) -> list[tuple[float | None, float | None]]:
        return [a.ranges.get(mode, (None, None)) for a in self.analyzers]

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
                self._console_start(analyzer)
                self.log.info(f"analyzer {analyzer.index} ({analyzer.name}): {analyzer.identity}")
        except MlpowerError:
            self._close_sources()
            raise
        first = self.analyzers[0]
        try:
            self.stream = self._open_stream(first)
        except OSError as exc:
            self._close_sources()
            raise DirectorError(storage_reason(exc, "documents.jsonl")) from exc
        if self.stream.log_error is not None:  # the disk filled before the run began
            self.stream.stop("failed", self.stream.log_error, output_dir=str(self.dir))
            self._close_sources()
            raise DirectorError(self.stream.log_error)
        self.stream.on_log_error = self._storage_failed
        for analyzer in self.analyzers:
            self.stream.descriptor(stream=analyzer.name, source=analyzer.source.info,
                                   sample_interval_s=self.config.sample_interval_s)
        self._opened = True
        if self.metrics is not None:
            self.metrics.set_run(self.run_id, self.identity.sut, self.identity.benchmark, self.identity.scenario,
                                 "idle")

    def _open_stream(self, first: _Analyzer) -> RunStream:
        return RunStream(self.bus, {
            "lab": self.identity.lab, "sut": self.identity.sut, "analyzer": first.name, "run_id": self.run_id,
            "benchmark": self.identity.benchmark, "scenario": self.identity.scenario,
            "settings": {**self.config.settings, "sample_interval_s": self.config.sample_interval_s,
                         "analyzer_sleep_s": self.config.sleep_s, "debug": self.config.debug},
            "t_utc_s": now_utc_s(),
            "tier": "official" if all(a.source.info.tier == "official" for a in self.analyzers) else "informative",
            "compliant_durations": not self.config.debug,
        }, log_path=self.dir / "documents.jsonl")

    def _storage_failed(self, reason: str) -> None:
        """documents.jsonl could not be written (disk full): the run fails, from a helper thread
        (the caller may be a recorder's publisher, which ``fail`` waits for)."""
        threading.Thread(target=self.fail, args=(reason,), name=f"fail-{self.run_id}", daemon=True).start()

    def _analyzer_up(self, analyzer: _Analyzer, up: bool) -> None:
        if self.metrics is not None:
            self.metrics.set_analyzer_up(analyzer.name, self.identity.sut, up)

    def _console_start(self, analyzer: _Analyzer) -> None:
        now = now_utc_s()
        console = analyzer.console
        console.add(now, f"mlpower director: {analyzer.source.info.kind} source at {analyzer.source.info.address}"
                         f" ({'SPEC PTDaemon' if analyzer.source.info.kind == 'ptdaemon' else 'no PTDaemon'};"
                         f" tier {analyzer.source.info.tier})")
        console.add(now, f"Analyzer identity response of {len(analyzer.identity)} bytes: {analyzer.identity}")
        if analyzer.source.info.kind in ("wt310e", "simulator"):
            # the director computes each sample's uncertainty from the datasheet and flags > 1 %
            console.add(now, f"Uncertainty checking for Yokogawa{analyzer.source.info.model or 'WT310E'} is activated")
        elif analyzer.source.info.kind == "ptdaemon" and identify_checks_uncertainty(analyzer.identity):
            # Used only when PTDaemon's own console is not available (a running PTDaemon without a
            # console_log): its Identify reply says it estimates accuracy, which is what its start-up
            # line states, so the record keeps that line (power-dev's checker requires it).
            console.add(now, f"Uncertainty checking for {analyzer.source.info.model} is activated")

    # ----------------------------------------------------------------------- phases

    def _step(self, event: Event) -> Action:
        step = transition(self.state, event)
        if step.action is not Action.NONE:
            self.state = step.state
        return step.action

    def start(self, mode: str, manual_ranges: tuple[float, float] | None = None) -> None:
        """Start ranging (auto ranges) or testing (ranges from ranging, or the manual ones)."""
        if mode == "ranging":
            event = Event.START_RANGING
        elif mode == "testing":
            event = Event.START_TESTING_MANUAL if manual_ranges is not None else Event.START_TESTING
        else:
            raise PhaseError(f"unknown mode {mode!r}")
        with self._lock:
            previous = self.state
            if transition(self.state, event).action is Action.NONE:
                return
            phase = [[now_utc_s(), time.monotonic()]]
            ranges = self._phase_ranges(mode, manual_ranges)  # raises before any state change
            self._step(event)
            try:
                self._set_ranges(mode, ranges)
            except MlpowerError as exc:
                self.state = previous
                raise PhaseError(str(exc), reply=getattr(exc, "reply", "Error: exception")) from exc
            if self._cancel.wait(self.config.sleep_s):
                raise PhaseError(f"session ended while starting {mode}")
            mark = f"{self.mark_prefix}_{mode}"
            for analyzer in self.analyzers:
                try:
                    analyzer.source.start(mark)
                except MlpowerError as exc:  # the analyzer refused or vanished: the run cannot go on
                    if isinstance(exc, AnalyzerLost):
                        self._analyzer_up(analyzer, False)
                    self.fail(f"analyzer {analyzer.name} did not start {mode}: {exc}")
                    raise PhaseError(str(exc)) from exc
                analyzer.console.add(now_utc_s(), f"Go with mark '{mark}'")
            assert self.stream is not None
            self.stream.mark(f"{mode}_begin", mode=mode)
            for analyzer in self.analyzers:
                self._start_recorder(analyzer, mode)
            phase.append([now_utc_s(), time.monotonic()])
            self.phases[mode] = phase
            if self.metrics is not None:
                self.metrics.set_run(self.run_id, self.identity.sut, self.identity.benchmark,
                                     self.identity.scenario, mode)
            self.log.info(f"{mode} started (mark {mark}, ranges {self.ranges(mode)})")

    def _phase_ranges(self, mode: str, manual: tuple[float, float] | None) -> list[tuple[float | None, float | None]]:
        if mode == "ranging":
            return [(None, None)] * len(self.analyzers)
        if manual is not None:
            volts, amps = manual
            if not (math.isfinite(volts) and math.isfinite(amps) and volts > 0 and amps > 0):
                raise PhaseError(f"manual ranges must be positive: {volts}, {amps}",
                                 reply=f"Error setting voltage range: {[str(volts)] * len(self.analyzers)}")
            self.manual_ranges = True
            return [(volts, amps)] * len(self.analyzers)
        result: list[tuple[float | None, float | None]] = []
        for analyzer in self.analyzers:
            try:
                model = analyzer.source.info.model or "WT310E"
                result.append(testing_ranges(analyzer.readings["ranging"], model=model))
            except RangeError as exc:
                reply = f"Error setting voltage range: {['-1'] * len(self.analyzers)}"
                raise PhaseError(str(exc), reply=reply) from exc
        return result

    def _set_ranges(self, mode: str, ranges: list[tuple[float | None, float | None]]) -> None:
        for analyzer, (volts, amps) in zip(self.analyzers, ranges, strict=True):
            try:
                analyzer.source.set_ranges(volts, amps)
            except RangeError as exc:
                raise PhaseError(str(exc), reply=f"Error setting current range: {[str(amps)]}") from exc
            analyzer.ranges[mode] = (volts, amps)
            now = now_utc_s()
            analyzer.console.add(now, f"Volt range set to {'Auto' if volts is None else f'{volts:.6f}V'}")
            analyzer.console.add(now, f"Amp range set to {'Auto' if amps is None else f'{amps:.6f}A'}")

    def _start_recorder(self, analyzer: _Analyzer, mode: str) -> None:
        def on_sample(stream: str, reading: Reading) -> None:
            analyzer.readings[mode].append(reading)
            for line in outputs.sample_console_lines(reading, mode, analyzer.label):
                analyzer.console.add(reading.t_utc_s, line)
            if self.metrics is not None:
                self.metrics.observe(stream, analyzer.source.info.channel, self.identity.sut, reading)

        def on_lost(reason: str) -> None:
            self._analyzer_up(analyzer, False)
            threading.Thread(target=self.fail, args=(f"analyzer {analyzer.name} lost: {reason}",),
                             name=f"fail-{self.run_id}", daemon=True).start()

        config = RecorderConfig(self.config.sample_interval_s, self.config.page_interval_s,
                                self.config.page_max_samples)
        extra = SampleFlag.AUTO_RANGE if mode == "ranging" else 0
        if analyzer.source.info.kind in ("nvml", "rapl"):
            extra |= SampleFlag.SOFTWARE_METER
        analyzer.recorder = Recorder(analyzer.source, analyzer.name, mode, self.stream, config,
                                     on_sample=on_sample, on_lost=on_lost, extra_flags=int(extra))
        analyzer.recorder.start()

    def stop(self, mode: str) -> None:
        """Stop the phase: the sleep (the workload's tail), stop sampling, write the phase's files."""
        event = Event.STOP_RANGING if mode == "ranging" else Event.STOP_TESTING
        if mode not in ("ranging", "testing"):
            raise PhaseError(f"unknown mode {mode!r}")
        with self._lock:
            if self._step(event) is Action.NONE:
                return
            self.phases[mode].append([now_utc_s(), time.monotonic()])
            self._cancel.wait(self.config.sleep_s)
            try:
                self._end_phase(mode)
            except OSError as exc:  # the phase's files could not be written: the run cannot be trusted
                reason = storage_reason(exc, f"the {mode} files")
                self.fail(reason)
                raise PhaseError(reason) from exc
            self.phases[mode].append([now_utc_s(), time.monotonic()])
            self.log.info(f"{mode} stopped: {sum(len(a.readings[mode]) for a in self.analyzers)} samples")

    def _end_phase(self, mode: str) -> None:
        """Stop the recorders and the analyzers, and write this phase's files (also on failure)."""
        for analyzer in self.analyzers:
            if analyzer.recorder is not None:
                analyzer.recorder.stop()
                analyzer.recorder = None
                try:
                    analyzer.source.stop()
                except Exception as exc:  # a dead analyzer must not stop the files from being written
                    self.log.error(f"analyzer {analyzer.name} stop: {exc}")
                end = now_utc_s()
                readings = analyzer.readings[mode]
                analyzer.console.add(end, "Completed test")
                watts = outputs.watts_reply(readings).split(",")
                analyzer.console.add(end, f"Avg watts {watts[1]}, min watts {watts[2]}, max watts {watts[3]}, "
                                          f"samples {watts[4]}, errors {watts[5]}, valid {watts[6]}")
        if self.stream is not None and not self.stream_stopped:
            self.stream.mark(f"{mode}_end", mode=mode)
        self._write_phase_files(mode)

    @property
    def stream_stopped(self) -> bool:
        return self._ended.is_set()

    def _write_phase_files(self, mode: str) -> None:
        folder = self.dir / outputs.MODE_DIR[mode]
        mark = f"{self.mark_prefix}_{mode}"
        streams = [a.readings[mode] for a in self.analyzers]
        ptd = [a.ptd_stop(mark) for a in self.analyzers]
        if len(self.analyzers) == 1 and ptd[0] is not None:
            # PTDaemon ran: spl.txt is its RL data rewritten with the Mark, exactly as power-dev does
            outputs.write_text(folder / "spl.txt", "".join(f"{line}\n" for line in ptd[0].spl_lines()) + "\n")
        else:
            if len(self.analyzers) > 1:
                suffix = "csv" if mode == "ranging" else "txt"
                for analyzer in self.analyzers:
                    outputs.write_text(folder / f"spl_analyzer_{analyzer.index}.{suffix}",
                                       outputs.spl_text(analyzer.readings[mode], mark))
            outputs.write_text(folder / "spl.txt",
                               outputs.merged_spl_text(streams, mark, tolerance_s=self.config.sample_interval_s / 2))
        if mode == "testing":
            replies = [self._summary_replies(a) for a in self.analyzers]
            outputs.write_text(folder / "ptd_out.txt", outputs.ptd_out_text(replies))
            self._write_ptd_logs()

    def _summary_replies(self, analyzer: _Analyzer) -> tuple[str, str]:
        """PTDaemon's own ``Watts``/``Uncertainty`` testing replies when it ran; else computed from our readings."""
        stop = analyzer.ptd_stop(f"{self.mark_prefix}_testing")
        if stop is not None and stop.watts_before_stop and stop.uncertainty_before_stop:
            return stop.watts_before_stop, stop.uncertainty_before_stop
        readings = analyzer.readings["testing"]
        return outputs.watts_reply(readings), outputs.uncertainty_reply(readings)

    def _write_ptd_logs(self) -> None:
        consoles = [a.ptd_console() or a.console.text() for a in self.analyzers]
        outputs.write_text(self.dir / "power" / "ptd_logs.txt", outputs.ptd_logs_text(consoles))
        for analyzer, console in zip(self.analyzers, consoles, strict=True):
            outputs.write_text(self.dir / "power" / f"ptd_logs_analyzer_{analyzer.index}.txt", console)

    # ----------------------------------------------------------------------- ending

    def done(self) -> None:
        self._end("success", Event.DONE, "")

    def fail(self, reason: str) -> None:
        self._end("failed", Event.FAIL, reason)

    def abort(self, reason: str) -> None:
        self._end("aborted", Event.ABORT, reason)

    def _end(self, status: str, event: Event, reason: str) -> None:
        if event is not Event.DONE:
            self._cancel.set()  # cut a start/stop sleep short
        with self._lock:
            if self.state in TERMINAL:
                return
            running = next((m for m in ("ranging", "testing") if self.state.value == m), None)
            self._step(event)
            self.status_reason = reason
            unwritten: list[str] = []  # files a full disk refused: the run is not a success then

            def write(what: str, action: Callable[[], None]) -> None:
                try:
                    action()
                except OSError as exc:
                    unwritten.append(storage_reason(exc, what))
                    self.log.error(unwritten[-1])

            if running is not None:
                write(f"the {running} files", lambda: self._end_phase(running))
                self.phases[running].append([now_utc_s(), time.monotonic()])
            if event is not Event.DONE:
                self.log.error(f"session {status}: {reason}")
            if not (self.dir / "power" / "ptd_logs.txt").exists():
                write("power/ptd_logs.txt", self._write_ptd_logs)
            self._restore_ranges()
            write("samples.parquet", lambda: self._write_parquet(status, reason))
            if unwritten and status == "success":
                status, reason = "failed", unwritten[0]
                self.state, self.status_reason = State.FAILED, reason
                self.log.error(f"session {status}: {reason}")
            self.log.info(f"session {self.run_id} {status}")
            write("power/server.log", lambda: outputs.write_text(self.dir / "power" / "server.log", self.log.text()))
            write("power/server.json", lambda: outputs.write_text(self.dir / "power" / "server.json",
                                                                  outputs.server_json_text(self.summary(status))))
            if unwritten and status == "success":  # server.log or server.json itself: the record is incomplete
                status, reason = "failed", unwritten[0]
                self.state, self.status_reason = State.FAILED, reason
            self._close_sources()
            if self.stream is not None:
                self.stream.stop(status, reason, output_dir=str(self.dir))
            self._ended.set()
            if self.metrics is not None:
                self.metrics.set_run(self.run_id, self.identity.sut, self.identity.benchmark,
                                     self.identity.scenario, status)
        if self._on_end is not None:
            self._on_end(self)

    def _restore_ranges(self) -> None:
        for analyzer in self.analyzers:
            try:
                restore = getattr(analyzer.source, "restore_initial_ranges", None)
                if callable(restore):  # PTDaemon: SR,V/SR,A back to what RR said (power-dev's `done`)
                    restore()
                else:
                    analyzer.source.set_ranges(None, None)
            except Exception as exc:  # a dead analyzer must not stop the files from being written
                self.log.error(f"analyzer {analyzer.name}: restoring ranges: {exc}")

    def _close_sources(self) -> None:
        for analyzer in self.analyzers:
            try:
                analyzer.source.close()
            except Exception as exc:  # a dead analyzer must not stop the files from being written
                self.log.error(f"analyzer {analyzer.name} close: {exc}")

    def summary(self, status: str) -> dict[str, Any]:
        modules, sources = outputs.director_sources()
        ptd_messages: list[dict[str, str]] = []
        for analyzer in self.analyzers:
            ptd_messages.extend(analyzer.ptd_messages() or [])
        return {
            "version": "1.0",
            "timezone": -time.localtime().tm_gmtoff,
            "modules": modules,
            "sources": sources,
            "messages": list(self.messages),
            "uuid": {"client": self.identity.client_uuid, "server": self.identity.server_uuid},
            "session_name": self.run_id,
            "results": outputs.results_hashes(self.dir),
            "phases": {mode: list(points) for mode, points in self.phases.items()},
            "ptd_messages": ptd_messages,
            "ptd_config": [a.ptd_config() for a in self.analyzers],
            "debug": self.config.debug,
            "mlpower": {
                "implementation": "mlpower director (not the MLCommons power-dev server)",
                "status": status,
                "reason": self.status_reason,
                "ptdaemon": [a.source.info.kind == "ptdaemon" for a in self.analyzers],
                "analyzers": [{"name": a.name, "identity": a.identity, **a.source.info.model_dump(),
                               "ranges": {m: list(r) for m, r in a.ranges.items()}} for a in self.analyzers],
                "sample_interval_s": self.config.sample_interval_s,
                "analyzer_sleep_s": self.config.sleep_s,
                "manual_ranges": self.manual_ranges,
            },
        }

    def _write_parquet(self, status: str, reason: str) -> None:
        rows: list[tuple[str, str | None, Reading]] = [
            (a.name, mode, r) for a in self.analyzers for mode in ("ranging", "testing") for r in a.readings[mode]]
        metadata = {
            "run_id": self.run_id, "lab": self.identity.lab, "sut": self.identity.sut,
            "benchmark": self.identity.benchmark, "scenario": self.identity.scenario, "status": status,
            "reason": reason, "sample_interval_s": self.config.sample_interval_s, "debug": self.config.debug,
            "sources": [a.source.info.model_dump() for a in self.analyzers],
            "ranges": {a.name: {m: list(r) for m, r in a.ranges.items()} for a in self.analyzers},
            "phases": self.phases,
        }
        outputs.write_parquet(self.dir / "samples.parquet", rows, metadata)
