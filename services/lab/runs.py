"""``mlpower runs``: the past runs in results folders, one row each, read from the run trees.

A run folder is one holding ``documents.jsonl`` (mlpower's run stream). Its first document
(``RunStart``) gives the SUT and the start time; ``power/server.json`` the director's status; the
``compliance.json`` that ``mlpower demo`` and ``mlpower lab run`` write beside it the verdict,
average power and efficiency (a run without one is listed as not analyzed: ``mlpower check``
judges it). Nothing is recomputed here: every number is the one the analysis published.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from mlpower.confine import PathRefused, open_confined
from mlpower.logtext import terminal_text
from mlpower.schema import RunAnalyzed, RunStart, decode
from rich.console import Console
from rich.table import Table
from rich.text import Text

DOCUMENTS = "documents.jsonl"
ANALYSIS = "compliance.json"
SERVER_JSON = Path("power") / "server.json"
MAX_DEPTH = 3  # results/<run>, results/demo/<run>, .lab/volumes/results/<run>
MAX_READ_BYTES = 4 * 1024 * 1024  # server.json and compliance.json are a few KiB; a bigger one is not ours


@dataclass(frozen=True)
class PastRun:
    run_id: str
    sut: str
    started_utc_s: float | None
    status: str  # the director's: success, failed, aborted (or unknown)
    verdict: str  # pass, fail, or "not analyzed"
    avg_power_w: float | None
    efficiency: float | None
    efficiency_unit: str
    path: str

    @property
    def when_utc(self) -> str:
        if self.started_utc_s is None:
            return "-"
        try:
            return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(self.started_utc_s))
        except (OverflowError, ValueError, OSError):  # a crafted start time (1e300, nan): no date to show
            return "-"


def run_folders(root: Path, depth: int = MAX_DEPTH) -> Iterable[Path]:
    """Run folders at most ``depth`` below ``root``; a folder that cannot be read is passed over
    (``mlpower runs /`` meets /proc's and other users' folders), never the end of the listing."""
    try:
        if not root.is_dir() or depth < 0:
            return
        if (root / DOCUMENTS).is_file():
            yield root
            return
        children = sorted(p for p in root.iterdir() if not p.is_symlink() and p.is_dir())
    except OSError:
        return
    for child in children:
        yield from run_folders(child, depth - 1)


def _read(folder: Path, relative: str | Path, limit: int = MAX_READ_BYTES) -> bytes:
    """A run's own file, at most ``limit`` bytes: never a link out of the folder (a crafted tree's
    ``compliance.json -> /dev/zero`` or ``-> ~/.ssh/...``), a device or a FIFO."""
    with open_confined(folder, relative, what="run file") as handle:
        return bytes(handle.read(limit))


def _first_document(folder: Path) -> RunStart | None:
    try:
        message = decode(_read(folder, DOCUMENTS, 1_000_000).split(b"\n", 1)[0])
    except (OSError, ValueError, PathRefused):
        return None
    return message if isinstance(message, RunStart) else None


def _status(folder: Path) -> str:
    try:
        return str(json.loads(_read(folder, SERVER_JSON))["mlpower"]["status"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError, PathRefused):
        return "unknown"


def _analysis(folder: Path) -> RunAnalyzed | None:
    try:
        return RunAnalyzed.model_validate_json(_read(folder, ANALYSIS))
    except (OSError, ValueError, PathRefused):
        return None


def read_run(folder: Path) -> PastRun:
    start, analyzed = _first_document(folder), _analysis(folder)
    status = _status(folder)
    summary = analyzed.summary if analyzed is not None else None
    verdict = analyzed.verdict if analyzed is not None else "not analyzed"
    return PastRun(
        run_id=start.run_id if start is not None else folder.name,
        sut=start.sut if start is not None else (analyzed.sut if analyzed is not None else "?"),
        started_utc_s=start.t_utc_s if start is not None else None,
        status=status, verdict=verdict,
        avg_power_w=summary.avg_power_w if summary is not None else None,
        efficiency=summary.efficiency if summary is not None else None,
        efficiency_unit=summary.efficiency_unit if summary is not None else "",
        path=str(folder),
    )


def past_runs(roots: Iterable[Path]) -> list[PastRun]:
    seen: set[Path] = set()
    runs = []
    for root in roots:
        for folder in run_folders(root):
            if folder.resolve() not in seen:
                seen.add(folder.resolve())
                runs.append(read_run(folder))
    return sorted(runs, key=lambda r: (r.started_utc_s or 0.0, r.run_id))


def as_json(runs: list[PastRun]) -> list[dict[str, object]]:
    return [{**asdict(run), "when_utc": run.when_utc} for run in runs]


_VERDICT_STYLE = {"pass": "green", "fail": "red"}


def runs_table(runs: list[PastRun]) -> Table:
    """One row a run; its first cell holds the id, the start (UTC) and the path, each on its own line,
    so that 80 columns show every value whole (a long path folds, never cut)."""
    table = Table(title=f"{len(runs)} run(s)", title_justify="left", show_lines=True)
    table.add_column("run / started (UTC) / path", overflow="fold", min_width=26)
    table.add_column("SUT", overflow="fold")
    table.add_column("verdict", overflow="fold")
    table.add_column("avg power", justify="right", no_wrap=True)
    table.add_column("efficiency", justify="right", overflow="fold")
    for run in runs:
        style = _VERDICT_STYLE.get(run.verdict, "yellow")
        verdict = run.verdict if run.status in ("success", "unknown") else f"{run.status} run"
        power = f"{run.avg_power_w:,.1f} W" if run.avg_power_w is not None else "-"
        efficiency = f"{run.efficiency:.4g} {run.efficiency_unit}" if run.efficiency is not None else "-"
        # every text from a run tree is plain text: a crafted sut or folder name ("[/]", ":x:") neither
        # breaks the table nor styles it, and control characters are shown escaped
        first = Text.assemble((terminal_text(run.run_id), "bold"), f"\n{run.when_utc}\n",
                              (terminal_text(_short(run.path)), "dim"))
        table.add_row(first, _cell(run.sut), Text(terminal_text(verdict), style=style), power, _cell(efficiency))
    return table


def _cell(text: str) -> Text:
    return Text(terminal_text(text))


def _short(path: str) -> str:
    """Relative to the current folder when below it: shorter, and still a path that works here."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def print_runs(console: Console, runs: list[PastRun], roots: list[Path]) -> None:
    if not runs:
        console.print(Text(terminal_text(f"no runs under {', '.join(str(r) for r in roots)}")), soft_wrap=True)
        return
    console.print(runs_table(runs))
