"""One analyzer as a session holds it (its readings, ranges, recorder and console), and the
session's server.log.

A source that drives SPEC PTDaemon (``PtdDriven``) brings its own record: PTDaemon's command log,
console and stop results. For any other source the director keeps a PTD-format console itself,
with the lines the compliance checker looks for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from mlpower.ptdformat import console_line, server_log_line
from mlpower.timeutil import SYSTEM_CLOCK, Clock

from . import outputs
from .ptd_format import identify_checks_uncertainty
from .ptd_source import PtdStopResult
from .recorder import Recorder
from .session_states import Mode
from .sources import AnalyzerSource, PtdDriven, Reading

log = logging.getLogger(__name__)

YOKOGAWA_DEVICE_TYPES = {"WT210": 8, "WT310": 49, "WT310E": 49, "WT330": 52, "WT330E": 52, "WT332E": 52,
                         "WT333E": 52}
"""PTDaemon's device type numbers, for server.json ``ptd_config`` of a meter driven without it."""


class ServerLog:
    """server.log lines (``ptd-server <asctime> [LEVEL] message``), mirrored to Python logging."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._clock = clock

    def add(self, level: str, message: str) -> None:
        with self._lock:
            self._lines.append(server_log_line(self._clock.now_utc_s(), level, message))
        log.log(logging.getLevelName(level), "%s", message)

    def info(self, message: str) -> None:
        self.add("INFO", message)

    def error(self, message: str) -> None:
        self.add("ERROR", message)

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)


class ConsoleLog:
    """A PTD-format console (``MM-DD-YYYY HH:MM:SS.mmm: <message>``) kept by the director itself."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def add(self, t_utc_s: float, message: str) -> None:
        self._lines.append(console_line(t_utc_s, message) + "\n")

    def text(self) -> str:
        return "".join(self._lines)


class SessionAnalyzer:
    """One source of the session and what the director keeps about it."""

    def __init__(self, index: int, name: str, source: AnalyzerSource) -> None:
        self.index, self.name, self.source = index, name, source
        self.ptd: PtdDriven | None = source if isinstance(source, PtdDriven) else None
        self.identity = ""
        self.console = ConsoleLog()
        self.readings: dict[Mode, list[Reading]] = {"ranging": [], "testing": []}
        self.ranges: dict[Mode, tuple[float | None, float | None]] = {}
        self.recorder: Recorder | None = None

    @property
    def label(self) -> str:
        return self.source.info.model or self.source.info.kind

    def ptd_messages(self) -> list[dict[str, str]]:
        """The real PTDaemon command/reply log when the source drives PTDaemon ([] otherwise)."""
        return self.ptd.ptd_messages() if self.ptd is not None else []

    def identify(self) -> str:
        # PTDaemon's open() already sent Identify (Hello, Identify, RR): a second one would break the
        # command sequence the compliance checker reads, so its recorded reply is reused
        for message in self.ptd_messages():
            if message["cmd"] == "Identify":
                return str(message["reply"])
        return self.source.identify()

    def console_text(self) -> str:
        """For ptd_logs.txt: a launched PTDaemon's own console, else the director's record."""
        own = self.ptd.console_text() if self.ptd is not None else ""
        return own or self.console.text()

    def ptd_stop(self, mark: str) -> PtdStopResult | None:
        """PTDaemon's stop result for ``mark`` (RL data, Watts/Uncertainty replies), if it ran."""
        stop = self.ptd.last_stop if self.ptd is not None else None
        return stop if stop is not None and stop.mark == mark else None

    def ptd_config(self) -> dict[str, Any]:
        if self.ptd is not None:
            return self.ptd.ptd_config()
        model = self.source.info.model.upper().removeprefix("YOKOGAWA")
        return {"command": [], "device_type": YOKOGAWA_DEVICE_TYPES.get(model, 0), "interface_flag": "",
                "dc_flag": None, "device_port": self.source.info.address, "channel": None}

    def restore_ranges(self) -> None:
        """PTDaemon: SR,V/SR,A back to what RR said (power-dev's ``done``); other meters: auto."""
        if self.ptd is not None:
            self.ptd.restore_initial_ranges()
        else:
            self.source.set_ranges(None, None)

    # ----------------------------------------------------------------------- the director's console

    def note_start(self, t_utc_s: float) -> None:
        info = self.source.info
        ptd = "SPEC PTDaemon" if info.kind == "ptdaemon" else "no PTDaemon"
        self.console.add(t_utc_s, f"mlpower director: {info.kind} source at {info.address} ({ptd}; tier {info.tier})")
        self.console.add(t_utc_s, f"Analyzer identity response of {len(self.identity)} bytes: {self.identity}")
        if info.kind in ("wt310e", "simulator"):
            # the director computes each sample's uncertainty from the datasheet and flags > 1 %
            self.console.add(t_utc_s, f"Uncertainty checking for Yokogawa{info.model or 'WT310E'} is activated")
        elif info.kind == "ptdaemon" and identify_checks_uncertainty(self.identity):
            # Used only when PTDaemon's own console is not available (a running PTDaemon without a
            # console_log): its Identify reply says it estimates accuracy, which is what its start-up
            # line states, so the record keeps that line (power-dev's checker requires it).
            self.console.add(t_utc_s, f"Uncertainty checking for {info.model} is activated")

    def note_ranges(self, t_utc_s: float, volts: float | None, amps: float | None) -> None:
        self.console.add(t_utc_s, f"Volt range set to {'Auto' if volts is None else f'{volts:.6f}V'}")
        self.console.add(t_utc_s, f"Amp range set to {'Auto' if amps is None else f'{amps:.6f}A'}")

    def note_sample(self, reading: Reading, mode: Mode) -> None:
        self.readings[mode].append(reading)
        for line in outputs.sample_console_lines(reading, mode, self.label):
            self.console.add(reading.t_utc_s, line)

    def note_completed(self, t_utc_s: float, mode: Mode) -> None:
        watts = outputs.watts_reply(self.readings[mode]).split(",")
        self.console.add(t_utc_s, "Completed test")
        self.console.add(t_utc_s, f"Avg watts {watts[1]}, min watts {watts[2]}, max watts {watts[3]}, "
                                  f"samples {watts[4]}, errors {watts[5]}, valid {watts[6]}")


def analyzers_of(sources: Sequence[tuple[str, AnalyzerSource]], indexes: Sequence[int] | None = None,
                 ) -> list[SessionAnalyzer]:
    """One per channel; ``indexes`` gives each channel's analyzer number (channels of one meter
    share it), by default one analyzer per channel."""
    numbers = list(indexes) if indexes is not None else list(range(1, len(sources) + 1))
    if len(numbers) != len(sources):
        raise ValueError("one analyzer number per channel")
    return [SessionAnalyzer(i, name, source) for i, (name, source) in zip(numbers, sources, strict=True)]
