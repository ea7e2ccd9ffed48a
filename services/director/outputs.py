"""The server-side output tree of power-dev (§3.7, §3.8, §4.2–4.4), plus samples.parquet.

Formatting is pure (readings in, text out); ``write_*`` functions only put text on disk. The
six files a client may download are ``DOWNLOADABLE``, in the order the upstream client fetches
them. For a direct-SCPI analyzer there is no PTDaemon: the PTD-format lines are synthesized from
the director's own readings and server.json says so under ``mlpower`` (and its ``ptd_config``
``command`` is empty, because nothing was launched).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlpower import ptdformat
from mlpower.powerdev import FETCH_FILES
from mlpower.ptdformat import sample_line
from mlpower.schema import SampleFlag

from .merge import merge_by_time, usable_power
from .sources import Reading

DOWNLOADABLE = FETCH_FILES
"""power-dev's FETCH_FILES_LIST: the only files ``download`` serves."""

MODE_DIR = {"ranging": "ranging", "testing": "run_1"}
HASHED_DIRS = ("power", "ranging", "run_1")
UNCERTAINTY_LIMIT = 0.01  # 1.00 % per sample (MLPerf power rules)


# --------------------------------------------------------------------------- names


def session_id(t_utc_s: float, label: str) -> str:
    """``YYYY-MM-DD_HH-MM-SS[_label]`` (upstream uses local time; the director runs in UTC)."""
    stamp = dt.datetime.fromtimestamp(t_utc_s, tz=dt.UTC).strftime("%Y-%m-%d_%H-%M-%S")
    return f"{stamp}_{label}" if label else stamp


# --------------------------------------------------------------------------- spl.txt


def spl_fields(reading: Reading, mark: str | None = None) -> str:
    """``Time,<ts>,Watts,<w>,Volts,<v>,Amps,<a>,PF,<pf>[,Mark,<m>]``; a flagged power is written -1 (never averaged)."""
    return sample_line(reading.t_utc_s, usable_power(reading), reading.voltage_v, reading.current_a,
                       reading.power_factor, mark)


def spl_text(readings: Iterable[Reading], mark: str) -> str:
    """One analyzer's spl.txt: a line per sample with ``Mark``, then one extra empty line (§3.7)."""
    return ptdformat.spl_text([spl_fields(r, mark) for r in readings])


def merged_spl_text(streams: Sequence[Sequence[Reading]], mark: str, tolerance_s: float) -> str:
    """Several analyzers: the §3.7 line format, but rows paired by timestamp, not by line index."""
    if len(streams) == 1:
        return spl_text(streams[0], mark)
    lines = []
    for row in merge_by_time(streams, tolerance_s):
        parts = ",".join(f"Analyzer{j},{spl_fields(part, mark) if part is not None else 'missing'}"
                         for j, part in enumerate(row.parts, start=1))
        lines.append(f"{sample_line(row.t_utc_s, row.power_w, None, None, None, mark)},{parts}\n")
    return "".join(lines)


def multichannel_spl_text(streams: Sequence[Sequence[Reading]], channels: Sequence[int], mark: str,
                          tolerance_s: float) -> str:
    """The elements of one meter: PTD's multichannel line (the sum group, the Mark, then ``Ch<k>`` and
    element k's group), rows paired by timestamp; a row with an element missing has no sum (-1)."""
    lines = []
    for row in merge_by_time(streams, tolerance_s):
        groups = [(ptdformat.channel_label(k), ptdformat.SampleGroup.of(
            usable_power(part), part.voltage_v, part.current_a, part.power_factor) if part is not None
            else ptdformat.SampleGroup.of(None, None, None, None)) for k, part in zip(channels, row.parts, strict=True)]
        lines.append(ptdformat.SampleLine.of(row.t_utc_s, ptdformat.SampleGroup.of(row.power_w, None, None, None),
                                             mark, groups).text())
    return ptdformat.spl_text(lines)


# --------------------------------------------------------------------------- PTD-style summaries


def watts_reply(readings: Sequence[Reading]) -> str:
    """``Watts,<avg>,<min>,<max>,<samples>,<errors>,<valid>`` over the samples that may be averaged."""
    return ptdformat.watts_reply([p for p in (usable_power(r) for r in readings) if p is not None], len(readings))


def relative_uncertainty(reading: Reading) -> float | None:
    power = usable_power(reading)
    if power is None or reading.uncertainty_w is None or power <= 0 or not math.isfinite(reading.uncertainty_w):
        return None
    return reading.uncertainty_w / power


def uncertainty_reply(readings: Sequence[Reading]) -> str:
    """``Uncertainty,<avg>,<min>,<max>,<total>,<invalid>,<valid>,<unknown>`` (relative values, PTD style)."""
    invalid = sum(1 for r in readings if usable_power(r) is None)
    known = [u for u in (relative_uncertainty(r) for r in readings) if u is not None]
    return ptdformat.uncertainty_reply(known, len(readings), invalid)


def sample_console_lines(reading: Reading, mode: str, analyzer_label: str) -> list[str]:
    """What PTD prints for a problem sample; ranging (auto range) problems stay in the ranging window."""
    lines: list[str] = []
    if reading.flags & SampleFlag.MISSING or reading.power_w is None:
        lines.append(f"ERROR: Bad watts reading nan from {analyzer_label}")
    elif reading.flags & SampleFlag.OVERRANGE:
        lines.append("ERROR: Current appears to be too high for set range")
    elif mode == "ranging":
        if reading.uncertainty_w is None:
            lines.append("ERROR: Can't evaluate uncertainty of this sample!")
    else:
        u = relative_uncertainty(reading)
        if u is not None and u > UNCERTAINTY_LIMIT:
            lines.append(f"WARNING: Uncertainty {u * 100:.2f}%, which is above 1.00% limit for the last sample!")
    return lines


# --------------------------------------------------------------------------- server.json


def sha1_file(path: Path) -> str:
    digest = hashlib.sha1()  # noqa: S324 - the format's checksum, not security
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def results_hashes(session_dir: Path) -> dict[str, str]:
    """SHA-1 of every file of power/, ranging/ and run_1/ except server.json (not written yet)."""
    hashes: dict[str, str] = {}
    for folder in HASHED_DIRS:
        base = session_dir / folder
        if not base.is_dir():
            continue
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            relative = path.relative_to(session_dir).as_posix()
            if relative not in ("power/server.json", "power/client.json"):
                hashes[relative] = sha1_file(path)
    return dict(sorted(hashes.items()))


def director_sources() -> tuple[dict[str, str], dict[str, str]]:
    """``modules`` and ``sources`` of server.json for *this* implementation (honest: mlpower, not power-dev)."""
    package_dir = Path(__file__).resolve().parent
    sources = {p.relative_to(package_dir).as_posix(): sha1_file(p)
               for p in sorted(package_dir.rglob("*.py")) if "__pycache__" not in p.parts}
    modules = {f"mlpower.director.{Path(rel).with_suffix('').as_posix().replace('/', '.')}": rel
               for rel in sources if rel != "__init__.py"}
    return dict(sorted(modules.items())), dict(sorted(sources.items()))


SERVER_JSON_KEYS = ("version", "timezone", "modules", "sources", "messages", "uuid", "session_name", "results",
                    "phases", "ptd_messages", "ptd_config")


def server_json_text(summary: Mapping[str, Any]) -> str:
    """json.dump(indent=4) in the documented key order, ``debug`` only when true, no trailing newline."""
    ordered: dict[str, Any] = {key: summary[key] for key in SERVER_JSON_KEYS}
    if summary.get("debug"):
        ordered["debug"] = True
    for key, value in summary.items():  # mlpower's own, additional keys (the checker ignores extra keys)
        if key not in ordered and key != "debug":
            ordered[key] = value
    return json.dumps(ordered, indent=4)


# --------------------------------------------------------------------------- writing


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8", newline="")
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk: no half-written file; the previous one, if any, stays
        raise


SAMPLE_FIELDS = ("t_utc_s", "power_w", "voltage_v", "current_a", "power_factor", "voltage_range_v",
                 "current_range_a", "uncertainty_w", "flags")


def write_parquet(path: Path, rows: Sequence[tuple[str, str | None, Reading]], metadata: Mapping[str, Any]) -> None:
    """All samples (stream, mode, the sample columns) with the run's metadata as Parquet key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def clean(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else float(x)

    columns: dict[str, list[Any]] = {"stream": [s for s, _, _ in rows], "mode": [m for _, m, _ in rows]}
    for name in SAMPLE_FIELDS:
        values = [getattr(r, name) for _, _, r in rows]
        columns[name] = [int(v) for v in values] if name == "flags" else [clean(v) for v in values]
    types = {"stream": pa.string(), "mode": pa.string(), "flags": pa.int64()}
    table = pa.table({k: pa.array(v, type=types.get(k, pa.float64())) for k, v in columns.items()})
    table = table.replace_schema_metadata({f"mlpower.{k}".encode(): json.dumps(v, default=str).encode()
                                           for k, v in metadata.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        pq.write_table(table, tmp)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
