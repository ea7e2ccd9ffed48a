"""Reading one run's output tree (power-dev-protocol.md §4.1): ``power/``, ``ranging/``, ``run_1/``
(shared: ``mlpower.runview`` builds the run view from it).

Works on mlpower's own trees and on MLPerf result folders with the same layout (a submission's
``performance/`` folder). Nothing here raises for a damaged part of the tree: each part is
either read or replaced by the reason it could not be, so that the checker can name the file
(and line) in a finding. Only a folder that is no run at all raises.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, NotARunError
from .loadgen_log import DetailLog, read_detail, read_summary
from .ptdformat import PtdFormatError, parse_sample_line
from .runstream import read_documents
from .samples import Samples
from .schema import RunDocument, SampleFlag

MODE_DIRS = {"ranging": "ranging", "testing": "run_1"}
REQUIRED_PATHS = (
    "power/client.json", "power/client.log", "power/ptd_logs.txt", "power/server.json", "power/server.log",
    "ranging/mlperf_log_detail.txt", "ranging/mlperf_log_summary.txt", "ranging/spl.txt",
    "run_1/mlperf_log_detail.txt", "run_1/mlperf_log_summary.txt", "run_1/spl.txt",
)
DOCUMENT_PATHS = ("documents.jsonl", "power/documents.jsonl")  # mlpower's own run stream, when present


@dataclass(frozen=True)
class SplFile:
    """``spl.txt``: the samples the checker averages, plus every row it could not read, by line."""

    path: str
    samples: Samples
    power_factor: np.ndarray
    marks: tuple[str, ...]
    problems: tuple[str, ...] = ()


def _float_or_nan(text: str) -> float:
    value = float(text)
    return math.nan if value == -1.0 else value  # -1.000000 is PTD's "not available"


@dataclass(frozen=True)
class SplLine:
    t_utc_s: float
    watts: float  # NaN: not available, or unreadable (then ``problem`` says so)
    power_factor: float
    mark: str
    problem: str = ""


def parse_spl_line(line: str) -> SplLine:
    """One ``Time,<stamp>,Watts,...,PF,<pf>[,Mark,<mark>]`` line of spl.txt (the layout is
    ``mlpower.ptdformat``'s); ValueError for a row that is no sample. A readable row with an
    unreadable value is kept as NaN with its problem, so the checker can name the line."""
    try:
        parsed = parse_sample_line(line)
    except PtdFormatError as exc:
        if "timestamp" in exc.reason:
            raise ValueError(f"corrupt timestamp {line.split(',')[1][:40]!r}") from None
        raise ValueError(f"corrupt sample row ({exc.reason}): {line[:80]!r}") from None
    if parsed is None:
        raise ValueError(f"corrupt sample row (expected field Watts): {line[:80]!r}")
    mark = parsed.mark or ""
    try:
        return SplLine(parsed.t_utc_s, _float_or_nan(parsed.total.watts), _float_or_nan(parsed.total.pf), mark)
    except ValueError:
        return SplLine(parsed.t_utc_s, math.nan, math.nan, mark, f"corrupt value in {line[:80]!r}")


def parse_spl(text: str, path: str = "spl.txt") -> SplFile:
    t, p, pf, flags, marks = [], [], [], [], []
    problems: list[str] = []
    lines = text.split("\n")
    if text and not text.endswith("\n"):
        problems.append(f"{path}:{len(lines)}: truncated: the last line has no line end")
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.startswith("Time"):
            if line.strip():
                problems.append(f"{path}:{number}: not a sample line: {line[:60]!r}")
            continue
        try:
            row = parse_spl_line(line)
        except ValueError as exc:
            problems.append(f"{path}:{number}: {exc}")
            continue
        if row.problem:
            problems.append(f"{path}:{number}: {row.problem}")
        t.append(row.t_utc_s)
        p.append(row.watts)
        pf.append(row.power_factor)
        flags.append(int(SampleFlag.MISSING) if math.isnan(row.watts) else 0)
        marks.append(row.mark)
    samples = Samples.from_columns({"t_utc_s": t, "power_w": p, "flags": flags})
    return SplFile(path, samples, np.array(pf, dtype=np.float64), tuple(marks), tuple(problems))


@dataclass
class ModeDir:
    name: str  # "ranging" or "testing"
    folder: str  # "ranging" or "run_1"
    detail: DetailLog | None = None
    summary: dict[str, str] | None = None
    spl: SplFile | None = None
    errors: dict[str, str] = field(default_factory=dict)  # relative path -> why it could not be read


@dataclass
class RunTree:
    root: Path
    client: dict[str, Any] | None = None
    server: dict[str, Any] | None = None
    modes: dict[str, ModeDir] = field(default_factory=dict)
    ptd_logs: list[str] | None = None
    ptd_out: str | None = None
    documents: list[RunDocument] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    present: frozenset[str] = frozenset()  # which of REQUIRED_PATHS are files in the tree

    @property
    def testing(self) -> ModeDir:
        return self.modes["testing"]

    @property
    def ranging(self) -> ModeDir:
        return self.modes["ranging"]

    def error_for(self, relative: str) -> str:
        for errors in [self.errors, *(m.errors for m in self.modes.values())]:
            if relative in errors:
                return errors[relative]
        return f"{relative}: missing"


def find_run_root(path: Path) -> Path:
    """The session folder: ``path`` itself, its ``performance/`` folder, or its single session child."""
    def is_run(folder: Path) -> bool:
        return any((folder / name).is_dir() for name in ("power", "ranging", "run_1"))

    if not path.is_dir():
        raise NotARunError(f"{path}: no such folder")
    if is_run(path):
        return path
    if is_run(path / "performance"):
        return path / "performance"
    children = [child for child in sorted(path.iterdir()) if child.is_dir() and is_run(child)]
    if len(children) == 1:
        return children[0]
    if children:
        raise NotARunError(f"{path}: holds {len(children)} runs ({', '.join(c.name for c in children[:5])}); "
                           "name one of them")
    raise NotARunError(f"{path}: not a run folder (no power/, ranging/ or run_1/)")


def read_json(path: Path) -> Any:
    """A JSON file's content; an unreadable file or bad JSON is an InputError naming file (and line)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from exc
    except RecursionError:  # a crafted '{"a":{"a":...' deeper than the stack
        raise InputError(f"{path}: not JSON: nested too deeply") from None


def _read_json(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a JSON object")
    return data


def _not_readable(root: Path, relative: str) -> str:
    """Why the tree's file ``relative`` is not read ("" when it is): missing, not a regular file, or
    a link that leaves the run folder. A crafted tree (``spl.txt -> /etc/passwd``) must never make
    a finding quote a file from outside it."""
    path = root / relative
    if not path.is_file():
        return f"{relative}: missing"
    try:
        inside = path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        inside = False
    return "" if inside else f"{relative}: a link out of the run folder; not read"


def _text_of(root: Path, relative: str, errors: dict[str, str]) -> str | None:
    """An optional file's text, or None: missing, or refused (the reason kept in ``errors``)."""
    refused = _not_readable(root, relative)
    if refused:
        if not refused.endswith(": missing"):
            errors[relative] = refused
        return None
    return (root / relative).read_text(encoding="utf-8", errors="replace")


def _read_mode(root: Path, name: str, folder: str) -> ModeDir:
    mode = ModeDir(name, folder)
    base = root / folder
    for filename, reader, attribute in (
        ("mlperf_log_detail.txt", read_detail, "detail"),
        ("mlperf_log_summary.txt", read_summary, "summary"),
        ("spl.txt", lambda p: parse_spl(p.read_text(encoding="utf-8", errors="replace"), str(p)), "spl"),
    ):
        relative = f"{folder}/{filename}"
        refused = _not_readable(root, relative)
        if refused:
            mode.errors[relative] = refused
            continue
        try:
            setattr(mode, attribute, reader(base / filename))
        except (InputError, OSError) as exc:
            mode.errors[relative] = str(exc)
    return mode


def read_tree(path: Path) -> RunTree:
    root = find_run_root(Path(path))
    tree = RunTree(root, present=frozenset(p for p in REQUIRED_PATHS if not _not_readable(root, p)))
    for relative, attribute in (("power/client.json", "client"), ("power/server.json", "server")):
        refused = _not_readable(root, relative)
        if refused:
            tree.errors[relative] = refused
            continue
        try:
            setattr(tree, attribute, _read_json(root / relative))
        except InputError as exc:
            tree.errors[relative] = str(exc)
    for name, folder in MODE_DIRS.items():
        tree.modes[name] = _read_mode(root, name, folder)
    texts = {relative: _text_of(root, relative, tree.errors)
             for relative in ("power/ptd_logs.txt", "run_1/ptd_out.txt")}
    if texts["power/ptd_logs.txt"] is not None:
        tree.ptd_logs = texts["power/ptd_logs.txt"].splitlines()
    tree.ptd_out = texts["run_1/ptd_out.txt"]
    for relative in DOCUMENT_PATHS:
        refused = _not_readable(root, relative)
        if refused and not refused.endswith(": missing"):
            tree.errors[relative] = refused
        if not refused:
            try:
                tree.documents = list(read_documents(root / relative))
            except (ValueError, OSError) as exc:
                tree.errors[relative] = str(exc)
            break
    return tree
