"""Runs a previous director process left open: found at start, closed as aborted, samples kept.

A director killed mid-run (SIGKILL, power cut, OOM) leaves a run folder whose ``documents.jsonl``
has no ``run.stop``. At start the director looks for such runs of its own lab and SUT and:

* drops a last line torn by the kill (it was never published: the file is written first);
* writes what the server tree lacks: ``samples.parquet`` and each interrupted phase's ``spl.txt``
  from the stored pages, ``server.log`` and ``server.json`` (status ``aborted`` and the reason);
* appends ``RunStop(status="aborted", reason="director restarted: ...")`` to ``documents.jsonl``;
* replays the run's documents on the bus, then the stop (the end-of-run fact).
  A document killed between the disk write and the broker's confirm thus still reaches
  consumers; the rest are duplicates that idempotent consumers drop by (run_id, seq).

The samples are the ones stored as pages; the page being filled when the process died is lost.
When the run's end was decided before the kill (server.json written, run.stop not yet), that
status and reason are kept instead of ``aborted``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpower import topology
from mlpower.bus import Bus
from mlpower.errors import MlpowerError
from mlpower.ptdformat import server_log_line
from mlpower.schema import (
    DecodeError,
    PhaseMark,
    RunDocument,
    RunStart,
    RunStop,
    SamplePage,
    StreamDescriptor,
    decode,
    encode,
)
from mlpower.timeutil import now_utc_s

from . import outputs
from .settings import DirectorSettings
from .sources import Reading

log = logging.getLogger(__name__)

REASON = "director restarted: the run was interrupted (director process ended before the run did)"
TAIL_BYTES = 65536
STOP_MARKER = b'"type":"run.stop"'


@dataclass(frozen=True)
class Recovered:
    run_id: str
    folder: Path
    status: str
    reason: str
    pages: int
    samples: int


def _ends_with_stop(path: Path) -> bool:
    """Whether the file's last complete line is a run.stop (reads only the tail)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - TAIL_BYTES))
        tail = handle.read()
    lines = [line for line in tail.split(b"\n") if line.strip()]
    return bool(lines) and tail.endswith(b"\n") and STOP_MARKER in lines[-1]


def _read_valid(path: Path) -> list[RunDocument]:
    """Every document of the file; a torn or undecodable last line is cut off the file."""
    data = path.read_bytes()
    documents: list[RunDocument] = []
    offset = 0
    for line in (part + b"\n" for part in data.split(b"\n")):
        if offset >= len(data):
            break
        if offset + len(line) > len(data):
            line = line[:-1]  # the file's last bytes, without a line end
        try:
            if not line.endswith(b"\n"):
                raise DecodeError("no line end: torn by the kill")
            document = decode(line)
            if not isinstance(document, RunDocument):
                raise DecodeError(f"{getattr(document, 'type', '?')} is not a run document")
        except (DecodeError, ValueError) as exc:
            if offset + len(line) < len(data):
                raise ValueError(f"{path}: line at byte {offset} does not decode: {exc}") from exc
            log.warning("%s: dropping a last line torn when the director stopped (%d bytes)", path, len(line))
            with open(path, "r+b") as handle:
                handle.truncate(offset)
            break
        documents.append(document)
        offset += len(line)
    return documents


def _readings(page: SamplePage) -> list[Reading]:
    return [Reading(t_utc_s=page.t_utc_s[i], power_w=page.power_w[i], voltage_v=page.voltage_v[i],
                    current_a=page.current_a[i], power_factor=page.power_factor[i],
                    voltage_range_v=page.voltage_range_v[i], current_range_a=page.current_range_a[i],
                    uncertainty_w=page.uncertainty_w[i], flags=page.flags[i]) for i in range(len(page))]


def _decided_end(folder: Path) -> tuple[str, str] | None:
    """(status, reason) from a server.json written before the kill, if there is one."""
    try:
        extra = json.loads((folder / "power" / "server.json").read_text(encoding="utf-8")).get("mlpower", {})
    except (OSError, ValueError, AttributeError):
        return None
    status = extra.get("status") if isinstance(extra, dict) else None
    return (status, str(extra.get("reason", ""))) if status in ("success", "failed", "aborted") else None


def _write_tree(folder: Path, start: RunStart, documents: list[RunDocument], status: str, reason: str) -> None:
    pages = [d for d in documents if isinstance(d, SamplePage)]
    streams = [d.stream for d in documents if isinstance(d, StreamDescriptor)] or sorted({p.stream for p in pages})
    rows = [(p.stream, p.mode, r) for p in pages for r in _readings(p)]
    for mode in ("ranging", "testing"):
        spl = folder / outputs.MODE_DIR[mode] / "spl.txt"
        per_stream = [[r for s, m, r in rows if s == stream and m == mode] for stream in streams]
        if not spl.exists() and any(per_stream):
            interval = float(start.settings.get("sample_interval_s", 1.0))
            outputs.write_text(spl, outputs.merged_spl_text(per_stream, f"{start.run_id}_{mode}", interval / 2))
    t_now = now_utc_s()
    server_log = folder / "power" / "server.log"
    previous = server_log.read_text(encoding="utf-8") if server_log.exists() else ""
    outputs.write_text(server_log, previous + server_log_line(t_now, "ERROR", f"session {status}: {reason}"))
    phases: dict[str, list[list[float]]] = {"ranging": [], "testing": []}
    for mark in (d for d in documents if isinstance(d, PhaseMark) and d.source == "director" and d.mode):
        phases[mark.mode].append([mark.t_utc_s, 0.0])  # the monotonic clock died with the process
    if _decided_end(folder) is None:
        modules, sources = outputs.director_sources()
        summary: dict[str, Any] = {
            "version": "1.0", "timezone": 0, "modules": modules, "sources": sources, "messages": [],
            "uuid": {"client": "", "server": ""}, "session_name": start.run_id,
            "results": outputs.results_hashes(folder), "phases": phases, "ptd_messages": [], "ptd_config": [],
            "debug": bool(start.settings.get("debug", False)),
            "mlpower": {"implementation": "mlpower director (not the MLCommons power-dev server)",
                        "status": status, "reason": reason, "recovered": True,
                        "sample_interval_s": start.settings.get("sample_interval_s"),
                        "analyzer_sleep_s": start.settings.get("analyzer_sleep_s")},
        }
        outputs.write_text(folder / "power" / "server.json", outputs.server_json_text(summary))
    if rows and not (folder / "samples.parquet").exists():
        outputs.write_parquet(folder / "samples.parquet", rows, {
            "run_id": start.run_id, "lab": start.lab, "sut": start.sut, "benchmark": start.benchmark,
            "scenario": start.scenario, "status": status, "reason": reason,
            "sample_interval_s": start.settings.get("sample_interval_s"), "recovered": True})


def _publish(bus: Bus | None, start: RunStart, documents: list[RunDocument], stop: RunStop) -> None:
    if bus is None:
        return
    key = topology.run_key(start.lab, start.sut, start.analyzer, start.run_id)
    try:
        for document in [*documents, stop]:
            bus.publish(document, key)
    except MlpowerError as exc:
        log.error("could not publish the end of interrupted run %s: %s", start.run_id, exc)


def recover_run(folder: Path, bus: Bus | None = None) -> Recovered | None:
    """Close one interrupted run; None when its stream already ended (nothing to do)."""
    path = folder / "documents.jsonl"
    if _ends_with_stop(path):
        return None
    documents = _read_valid(path)
    if not documents or not isinstance(documents[0], RunStart):
        log.error("%s: no run.start; not a run this director can close", path)
        return None
    if isinstance(documents[-1], RunStop):
        return None
    start = documents[0]
    status, reason = _decided_end(folder) or ("aborted", REASON)
    _write_tree(folder, start, documents, status, reason)
    pages = [d for d in documents if isinstance(d, SamplePage)]
    stop = RunStop(run_id=start.run_id, seq=documents[-1].seq + 1, status=status, reason=reason,
                   t_utc_s=now_utc_s(), pages=len(pages), samples=sum(len(p) for p in pages),
                   marks=sum(1 for d in documents if isinstance(d, PhaseMark)), output_dir=str(folder))
    with open(path, "ab") as handle:
        handle.write(encode(stop) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    _publish(bus, start, documents, stop)
    log.warning("run %s was interrupted; closed as %s (%d pages, %d samples kept)", start.run_id, status,
                stop.pages, stop.samples)
    return Recovered(start.run_id, folder, status, reason, stop.pages, stop.samples)


def _belongs_here(path: Path, settings: DirectorSettings) -> bool:
    """Only this director's runs (same lab and SUT): another director may share the results folder."""
    try:
        with open(path, "rb") as handle:
            start = decode(handle.readline())
    except (OSError, DecodeError, ValueError):
        return False
    return isinstance(start, RunStart) and start.lab == settings.lab and start.sut == settings.sut


def recover_interrupted_runs(settings: DirectorSettings, bus: Bus | None = None) -> list[Recovered]:
    """Close every run of this director that a previous process left open. Call before taking sessions."""
    base = Path(settings.results_dir)
    if not base.is_dir():
        return []
    recovered = []
    for path in sorted(base.glob("*/documents.jsonl")):
        try:
            if not _belongs_here(path, settings):
                continue
            found = recover_run(path.parent, bus)
        except (OSError, ValueError) as exc:  # one damaged run must not keep the director from starting
            log.error("could not close interrupted run in %s: %s", path.parent, exc)
            continue
        if found is not None:
            recovered.append(found)
    return recovered
