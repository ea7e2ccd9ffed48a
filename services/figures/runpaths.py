"""Where one run's files live, from its name alone.

Requests and events name a run; they never carry a path. A run id is the director's kind of
name (letters, digits, ``_`` and ``-``, at most 128), and the folder it names must resolve
inside its root (a symlink pointing elsewhere is refused), so nothing outside the results and
figures folders can be read or written on a run's behalf.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlpower.figures.errors import FiguresError

RUN_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")  # the director's rule for run ids
DOCUMENTS_FILE = "documents.jsonl"
# The run's own analysis: the RunAnalyzed report ``mlpower demo`` writes, or ``mlpower check --json``;
# both hold the run's RunSummary under "summary".
ANALYSIS_FILE = "compliance.json"
RUN_FIGURE_KINDS = ("trace", "placement")


class BadRunId(FiguresError):
    """A run id that is not a plain name, or that resolves outside its folder."""


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise BadRunId("a run id is 1-128 letters, digits, '_' or '-'")
    return run_id


def run_folder(root: Path, run_id: str) -> Path:
    """``root/run_id``, refused unless it resolves inside ``root``."""
    check_run_id(run_id)
    base = Path(root).resolve()
    folder = (base / run_id).resolve()
    if folder.parent != base:
        raise BadRunId(f"run {run_id!r} resolves outside its folder")
    return folder


def run_figure_name(run_id: str, kind: str, suffix: str) -> str:
    return f"{check_run_id(run_id)}_{kind}.{suffix}"
