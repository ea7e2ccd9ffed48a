"""What a session writes: each phase's spl.txt (and ptd_out.txt), ptd_logs.txt, server.json's
contents and samples.parquet; from the session's analyzers, identity and phases.

PTDaemon's own records are used where it ran (its RL data as spl.txt, its Watts/Uncertainty
replies in ptd_out.txt, its console in ptd_logs.txt); otherwise the director's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlpower.ptdformat import parse_ptd_time, ptd_logs_text, ptd_out_text, spl_text

from . import outputs
from .channels import TOTAL_STREAM
from .merge import merge_by_time
from .session_analyzer import SessionAnalyzer
from .session_states import MODES, Mode
from .sum_stream import sum_reading

if TYPE_CHECKING:
    from .session import MeasurementSession

MULTICHANNEL_DEVICE_TYPE = 77
"""PTDaemon's device type for the WT330 family read as several channels (``-c <first>,<count>``)."""


def meters(session: MeasurementSession) -> list[list[SessionAnalyzer]]:
    """The session's channels grouped by analyzer (one meter or PTDaemon each), in order: power-dev's
    files that are per analyzer (ptd_logs_analyzer_<n>.txt, ptd_config, ptd_out.txt) follow these."""
    groups: dict[int, list[SessionAnalyzer]] = {}
    for analyzer in session.analyzers:
        groups.setdefault(analyzer.index, []).append(analyzer)
    return list(groups.values())


def write_phase_files(session: MeasurementSession, mode: Mode) -> None:
    folder = session.dir / outputs.MODE_DIR[mode]
    mark = session.mark(mode)
    analyzers = session.analyzers
    groups = meters(session)
    ptd = [group[0].ptd_stop(mark) for group in groups]
    if len(groups) == 1 and ptd[0] is not None:
        # PTDaemon ran: spl.txt is its RL data rewritten with the Mark (and Ch<k> groups), as power-dev does
        outputs.write_text(folder / "spl.txt", spl_text(ptd[0].spl_lines()))
    elif len(groups) == 1 and len(analyzers) > 1:
        # the elements of one meter read directly: PTD's multichannel line (sum group, Mark, Ch<k> groups)
        outputs.write_text(folder / "spl.txt", outputs.multichannel_spl_text(
            [a.readings[mode] for a in analyzers], [a.source.info.channel for a in analyzers], mark,
            session.merge_tolerance_s))
    else:
        if len(analyzers) > 1:
            suffix = "csv" if mode == "ranging" else "txt"
            for analyzer in analyzers:
                outputs.write_text(folder / f"spl_analyzer_{analyzer.index}.{suffix}",
                                   outputs.spl_text(analyzer.readings[mode], mark))
        streams = [a.readings[mode] for a in analyzers]
        outputs.write_text(folder / "spl.txt", outputs.merged_spl_text(streams, mark, session.merge_tolerance_s))
    if mode == "testing":
        replies = [_summary_replies(session, group, mark) for group in groups]
        outputs.write_text(folder / "ptd_out.txt", ptd_out_text(replies))
        write_ptd_logs(session)


def _summary_replies(session: MeasurementSession, group: list[SessionAnalyzer], mark: str) -> tuple[str, str]:
    """PTDaemon's own ``Watts``/``Uncertainty`` testing replies when it ran; else computed from our
    readings (of a multi-element meter: the sum of its elements, as PTD's multichannel replies are)."""
    stop = group[0].ptd_stop(mark)
    if stop is not None and stop.watts_before_stop and stop.uncertainty_before_stop:
        return stop.watts_before_stop, stop.uncertainty_before_stop
    if len(group) == 1:
        readings = group[0].readings["testing"]
    else:
        rows = merge_by_time([a.readings["testing"] for a in group], session.merge_tolerance_s)
        readings = [sum_reading(row) for row in rows]
    return outputs.watts_reply(readings), outputs.uncertainty_reply(readings)


def _console_of(group: list[SessionAnalyzer]) -> str:
    """One analyzer's console: PTDaemon's own, or the director's lines of its channels in time order."""
    if len(group) == 1 or group[0].ptd is not None:
        return group[0].console_text()
    # the same message from several elements within the same second (start-up, a range set on all) once
    seen: dict[tuple[str, str], str] = {}
    for analyzer in group:
        for line in analyzer.console_text().splitlines(keepends=True):
            stamp, _, message = line.partition(": ")
            seen.setdefault((stamp[:19], message), line)
    return "".join(sorted(seen.values(), key=_console_time))


def _console_time(line: str) -> float:
    try:
        return parse_ptd_time(line[:23])
    except ValueError:
        return 0.0


def write_ptd_logs(session: MeasurementSession) -> None:
    groups = meters(session)
    consoles = [_console_of(group) for group in groups]
    outputs.write_text(session.dir / "power" / "ptd_logs.txt", ptd_logs_text(consoles))
    for group, console in zip(groups, consoles, strict=True):
        outputs.write_text(session.dir / "power" / f"ptd_logs_analyzer_{group[0].index}.txt", console)


def _ptd_config(group: list[SessionAnalyzer]) -> dict[str, Any]:
    config = group[0].ptd_config()
    if len(group) > 1 and group[0].ptd is None:
        # several elements of one meter: what PTDaemon's multichannel type (77, -c <first>,<count>) would read
        elements = sorted(a.source.info.channel for a in group)
        config = {**config, "device_type": MULTICHANNEL_DEVICE_TYPE, "channel": [elements[0], len(elements)]}
    return config


def server_summary(session: MeasurementSession, status: str) -> dict[str, Any]:
    """server.json: power-dev's keys, then mlpower's own under ``mlpower``."""
    modules, sources = outputs.director_sources()
    groups = meters(session)
    ptd_messages = [m for group in groups for m in group[0].ptd_messages()]
    return {
        "version": "1.0",
        "timezone": -time.localtime().tm_gmtoff,
        "modules": modules,
        "sources": sources,
        "messages": list(session.messages),
        "uuid": {"client": session.identity.client_uuid, "server": session.identity.server_uuid},
        "session_name": session.run_id,
        "results": outputs.results_hashes(session.dir),
        "phases": {mode: list(points) for mode, points in session.phases.items()},
        "ptd_messages": ptd_messages,
        "ptd_config": [_ptd_config(group) for group in groups],
        "debug": session.config.debug,
        "mlpower": {
            "implementation": "mlpower director (not the MLCommons power-dev server)",
            "status": status,
            "reason": session.status_reason,
            "ptdaemon": [a.source.info.kind == "ptdaemon" for a in session.analyzers],
            "analyzers": [{"name": a.name, "identity": a.identity, **a.source.info.model_dump(),
                           "ranges": {m: list(r) for m, r in a.ranges.items()}} for a in session.analyzers],
            "sample_interval_s": session.config.sample_interval_s,
            "analyzer_sleep_s": session.config.sleep_s,
            "manual_ranges": session.manual_ranges,
        },
    }


def write_server_log(session: MeasurementSession) -> None:
    outputs.write_text(session.dir / "power" / "server.log", session.log.text())


def write_server_json(session: MeasurementSession, status: str) -> None:
    outputs.write_text(session.dir / "power" / "server.json", outputs.server_json_text(server_summary(session, status)))


def write_parquet(session: MeasurementSession, status: str, reason: str) -> None:
    rows = [(a.name, mode, r) for a in session.analyzers for mode in MODES for r in a.readings[mode]]
    rows += [(TOTAL_STREAM, mode, r) for mode in MODES for r in session.totals[mode]]
    identity = session.identity
    metadata = {
        "run_id": session.run_id, "lab": identity.lab, "sut": identity.sut, "benchmark": identity.benchmark,
        "scenario": identity.scenario, "status": status, "reason": reason,
        "sample_interval_s": session.config.sample_interval_s, "debug": session.config.debug,
        "sources": [a.source.info.model_dump() for a in session.analyzers],
        "ranges": {a.name: {m: list(r) for m, r in a.ranges.items()} for a in session.analyzers},
        "phases": session.phases,
    }
    outputs.write_parquet(session.dir / "samples.parquet", rows, metadata)
