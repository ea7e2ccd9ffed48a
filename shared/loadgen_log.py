"""A pure reader of LoadGen's ``mlperf_log_detail.txt`` and ``mlperf_log_summary.txt`` (shared:
the run view, analytics and the checker read LoadGen's logs through it).

The power window is read the way power-dev's client and checker read it (power-dev-protocol.md
§4.5): the first line containing ``power_begin`` (resp. ``power_end``), case-insensitive, its
first ``MM-DD-YYYY HH:MM:SS.fff`` match, parsed as UTC (LoadGen writes local time, so the SUT
must run in UTC, §6.1). Everything else comes from the ``:::MLLOG`` JSON lines.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpower.ptdformat import parse_ptd_time

from .errors import InputError

MLLOG_PREFIX = ":::MLLOG"
_STAMP = re.compile(r"\d*-\d*-\d* \d*:\d*:\d*\.\d*")


def parse_stamp(text: str) -> float:
    """``MM-DD-YYYY HH:MM:SS.fff`` (PTD, spl.txt, LoadGen markers), read as UTC seconds."""
    return parse_ptd_time(text)


@dataclass(frozen=True)
class DetailLog:
    path: str
    power_begin_utc_s: float | None
    power_end_utc_s: float | None
    values: dict[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def scenario(self) -> str:
        return str(self.values.get("effective_scenario", ""))

    @property
    def window_s(self) -> float | None:
        if self.power_begin_utc_s is None or self.power_end_utc_s is None:
            return None
        return self.power_end_utc_s - self.power_begin_utc_s


def _marker(path: str, number: int, line: str, key: str) -> float:
    match = _STAMP.search(line)
    if match is None:
        raise InputError(f"{path}:{number}: {key} line has no MM-DD-YYYY HH:MM:SS.fff timestamp")
    try:
        return parse_stamp(match.group(0))
    except ValueError as exc:
        raise InputError(f"{path}:{number}: {key} timestamp {match.group(0)!r} does not parse: {exc}") from exc


def parse_detail(text: str, path: str = "mlperf_log_detail.txt") -> DetailLog:
    """Markers and ``:::MLLOG`` values; a bad marker raises, a bad MLLOG line is a recorded problem."""
    begin = end = None
    values: dict[str, Any] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        lowered = line.lower()
        if begin is None and "power_begin" in lowered:
            begin = _marker(path, number, line, "power_begin")
        elif end is None and "power_end" in lowered:
            end = _marker(path, number, line, "power_end")
        if line.startswith(MLLOG_PREFIX):
            try:
                record = json.loads(line[len(MLLOG_PREFIX):])
                values.setdefault(str(record["key"]), record.get("value"))
            except (json.JSONDecodeError, KeyError, TypeError, RecursionError) as exc:
                problems.append(f"{path}:{number}: unreadable :::MLLOG line ({exc})")
    return DetailLog(path, begin, end, values, tuple(problems))


def read_detail(path: Path) -> DetailLog:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot read LoadGen detail log: {exc.strerror or exc}") from exc
    return parse_detail(text, str(path))


def require_window(log: DetailLog) -> tuple[float, float]:
    """The power window, or an error naming the file: never a guess."""
    if log.power_begin_utc_s is None or log.power_end_utc_s is None:
        missing = [k for k, v in (("power_begin", log.power_begin_utc_s), ("power_end", log.power_end_utc_s))
                   if v is None]
        raise InputError(f"{log.path}: no {' and no '.join(missing)} marker (LoadGen logged no power window)")
    return log.power_begin_utc_s, log.power_end_utc_s


def parse_summary(text: str) -> dict[str, str]:
    """``key : value`` lines of ``mlperf_log_summary.txt`` (first occurrence of each key)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if ":" not in line or line.startswith("="):
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key and value:
            values.setdefault(key, value)
    return values


def read_summary(path: Path) -> dict[str, str]:
    try:
        return parse_summary(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read LoadGen summary: {exc.strerror or exc}") from exc
