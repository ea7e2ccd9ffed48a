"""What a session writes: each phase's spl.txt (and ptd_out.txt), ptd_logs.txt, server.json's
contents and samples.parquet; from the session's analyzers, identity and phases.

PTDaemon's own records are used where it ran (its RL data as spl.txt, its Watts/Uncertainty
replies in ptd_out.txt, its console in ptd_logs.txt); otherwise the director's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlpower.ptdformat import ptd_logs_text, ptd_out_text, spl_text

from . import outputs
from .channels import TOTAL_STREAM
from .session_analyzer import SessionAnalyzer
from .session_states import MODES, Mode

if TYPE_CHECKING:
    from .session import MeasurementSession


def write_phase_files(session: MeasurementSession, mode: Mode) -> None:
    folder = session.dir / outputs.MODE_DIR[mode]
    mark = session.mark(mode)
    analyzers = session.analyzers
    ptd = [a.ptd_stop(mark) for a in analyzers]
    if len(analyzers) == 1 and ptd[0] is not None:
        # PTDaemon ran: spl.txt is its RL data rewritten with the Mark, exactly as power-dev does
        outputs.write_text(folder / "spl.txt", spl_text(ptd[0].spl_lines()))
    else:
        if len(analyzers) > 1:
            suffix = "csv" if mode == "ranging" else "txt"
            for analyzer in analyzers:
                outputs.write_text(folder / f"spl_analyzer_{analyzer.index}.{suffix}",
                                   outputs.spl_text(analyzer.readings[mode], mark))
        streams = [a.readings[mode] for a in analyzers]
        outputs.write_text(folder / "spl.txt", outputs.merged_spl_text(streams, mark, session.merge_tolerance_s))
    if mode == "testing":
        replies = [_summary_replies(a, mark) for a in analyzers]
        outputs.write_text(folder / "ptd_out.txt", ptd_out_text(replies))
        write_ptd_logs(session)


def _summary_replies(analyzer: SessionAnalyzer, mark: str) -> tuple[str, str]:
    """PTDaemon's own ``Watts``/``Uncertainty`` testing replies when it ran; else computed from our readings."""
    stop = analyzer.ptd_stop(mark)
    if stop is not None and stop.watts_before_stop and stop.uncertainty_before_stop:
        return stop.watts_before_stop, stop.uncertainty_before_stop
    readings = analyzer.readings["testing"]
    return outputs.watts_reply(readings), outputs.uncertainty_reply(readings)


def write_ptd_logs(session: MeasurementSession) -> None:
    consoles = [a.console_text() for a in session.analyzers]
    outputs.write_text(session.dir / "power" / "ptd_logs.txt", ptd_logs_text(consoles))
    for analyzer, console in zip(session.analyzers, consoles, strict=True):
        outputs.write_text(session.dir / "power" / f"ptd_logs_analyzer_{analyzer.index}.txt", console)


def server_summary(session: MeasurementSession, status: str) -> dict[str, Any]:
    """server.json: power-dev's keys, then mlpower's own under ``mlpower``."""
    modules, sources = outputs.director_sources()
    ptd_messages = [m for a in session.analyzers for m in a.ptd_messages()]
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
        "ptd_config": [a.ptd_config() for a in session.analyzers],
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
