"""Incremental builds of the catalogue's figures.

A figure is re-rendered when the digest of its inputs changed (the bytes of the CSVs it reads,
``typed_values.json``, the figure code and style, and the mode) or when one of its outputs is
missing or no longer has the bytes the last build wrote (the manifest records their SHA-256).
The digests live in ``<out>/.manifest.json``; a no-change rebuild hashes the inputs and the
outputs and returns without reading a table or importing matplotlib.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mlpower.figures import catalogue
from mlpower.figures.errors import FiguresError
from mlpower.figures.figuredata import MODES, FigureData
from mlpower.figures.files import file_digest
from mlpower.figures.typed import typed_bytes

log = logging.getLogger(__name__)

MANIFEST = ".manifest.json"
LOCK_FILE = ".build.lock"  # held while a build reads and writes the folder (_folder_lock)
OUTPUT_SUFFIXES = (".png", ".svg", ".json")
# The modules whose source decides what a figure looks like; a change to any re-renders everything.
CODE_MODULES = (
    "catalogue",
    "case_studies",
    "corrections",
    "draw",
    "figuredata",
    "files",
    "histograms",
    "loader",
    "pairing",
    "parse",
    "pngfile",
    "power_scales",
    "render",
    "trends",
    "typed",
)
CODE_FILES = tuple(f"{m}.py" for m in CODE_MODULES) + ("paper.mplstyle",)


@dataclass
class BuildReport:
    job_id: str
    mode: str
    out_dir: str
    rendered: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "mode": self.mode,
            "out_dir": self.out_dir,
            "rendered": self.rendered,
            "unchanged": self.unchanged,
            "seconds": round(self.seconds, 3),
        }


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise FiguresError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    return mode


def code_digest() -> str:
    package = resources.files("mlpower.figures")
    digest = hashlib.sha256()
    for name in CODE_FILES:
        digest.update(name.encode() + b"\0" + package.joinpath(name).read_bytes())
    return digest.hexdigest()


def input_digests(entries: Iterable[catalogue.Entry], data_dir: Path, mode: str) -> dict[str, str]:
    """One digest per figure: its input files' bytes, the typed values, the code, the mode."""
    entries = list(entries)
    files = {name: file_digest(data_dir / name) for name in sorted({f for e in entries for f in e.inputs})}
    shared = hashlib.sha256(typed_bytes()).hexdigest() + code_digest() + mode
    digests = {}
    for entry in entries:
        parts = [entry.name, shared] + [f"{name}={files[name]}" for name in entry.inputs]
        digests[entry.name] = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return digests


def read_manifest(out_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def _write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    tmp = out_dir / f".{MANIFEST}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, out_dir / MANIFEST)


def output_digests(out_dir: Path, name: str) -> dict[str, str]:
    """SHA-256 of each file a figure wrote; the manifest keeps them to notice damaged outputs."""
    return {f"{name}{suffix}": file_digest(out_dir / f"{name}{suffix}") for suffix in OUTPUT_SUFFIXES}


def _outputs_intact(out_dir: Path, name: str, recorded: dict[str, str] | None) -> bool:
    """Every output is there with the bytes the last build wrote (not deleted, overwritten or truncated)."""
    if not recorded:
        return False
    for suffix in OUTPUT_SUFFIXES:
        path = out_dir / f"{name}{suffix}"
        expected = recorded.get(path.name)
        if expected is None or not path.is_file() or file_digest(path) != expected:
            return False
    return True


Job = tuple[str, FigureData, dict[str, Any], str]  # (draw function, data, look, output folder)


def _render_one(job: Job) -> str:
    from mlpower.figures.render import render_figure

    draw_name, data, look, out_dir = job
    render_figure(draw_name, data, look, Path(out_dir))
    return data.name


def start_method() -> str:
    """``fork`` from a single-threaded process (the CLI: workers start with matplotlib loaded);
    ``forkserver`` from the service, where forking beside uvicorn's and the bus's threads could
    copy a lock some other thread holds."""
    methods = multiprocessing.get_all_start_methods()
    if threading.active_count() == 1 and "fork" in methods:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _render_cost(entry: catalogue.Entry) -> float:
    """Bigger figures with bigger text take longer to draw (a ranking, not a time)."""
    width, height = entry.look["figsize"]
    return width * height * entry.look["font_size"]


@contextlib.contextmanager
def _renderers(workers: int, jobs: int) -> Iterator[Callable[[Job], object]]:
    """Yields ``submit(job)``. With several workers, figures render while later ones are still
    being computed; leaving the block waits for all of them and raises the first failure."""
    if workers <= 1 or jobs <= 1:
        yield _render_one
        return
    method = start_method()
    if method == "fork":
        import mlpower.figures.draw  # noqa: F401 - imported before forking, so workers start with matplotlib loaded
    pool = ProcessPoolExecutor(max_workers=min(workers, jobs), mp_context=multiprocessing.get_context(method))
    futures: list[Future[str]] = []
    try:
        yield lambda job: futures.append(pool.submit(_render_one, job))
        for future in futures:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def build(
    out_dir: Path,
    data_dir: Path,
    *,
    mode: str = "paper",
    only: Iterable[str] | None = None,
    workers: int | None = None,
    force: bool = False,
    job_id: str | None = None,
) -> BuildReport:
    """Render the stale figures of ``only`` (all by default) into ``out_dir``; returns what was done."""
    started = time.perf_counter()
    check_mode(mode)
    entries = catalogue.select(list(only or ()))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = BuildReport(job_id=job_id or uuid.uuid4().hex[:12], mode=mode, out_dir=str(out_dir))
    with _folder_lock(out_dir):
        _build_locked(report, entries, out_dir, Path(data_dir), mode, workers, force)
    report.seconds = time.perf_counter() - started
    log.info(
        "figures build %s (%s): rendered %s, unchanged %s in %.2f s",
        report.job_id,
        mode,
        report.rendered,
        report.unchanged,
        report.seconds,
    )
    return report


@contextlib.contextmanager
def _folder_lock(out_dir: Path) -> Iterator[None]:
    """One build at a time per output folder, across threads, processes and replicas sharing the
    folder (flock on the results volume): the next build then finds the figures the previous one
    rendered up to date and renders nothing again."""
    with open(out_dir / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _build_locked(report: BuildReport, entries: list[Any], out_dir: Path, data_dir: Path, mode: str,
                  workers: int | None, force: bool) -> None:
    digests = input_digests(entries, Path(data_dir), mode)
    manifest = read_manifest(out_dir)
    stale = [
        e
        for e in entries
        if force
        or manifest.get(e.name, {}).get("digest") != digests[e.name]
        or not _outputs_intact(out_dir, e.name, manifest.get(e.name, {}).get("outputs"))
    ]
    report.unchanged = [e.name for e in entries if e not in stale]
    if stale:
        from mlpower.figures.loader import load_results
        from mlpower.figures.render import write_json

        # The slowest figures first, so that the workers finish at about the same time.
        ordered = sorted(stale, key=_render_cost, reverse=True)
        with _renderers(workers if workers is not None else default_workers(), len(ordered)) as submit:
            results = load_results(Path(data_dir))
            for entry in ordered:
                data = entry.compute(results, mode)
                extra = {"title": entry.title, "upstream_script": entry.upstream_script}
                write_json(data, out_dir, {**extra, "inputs_digest": digests[entry.name]})
                submit((entry.draw, data, entry.look, str(out_dir)))
        for entry in stale:
            manifest[entry.name] = {
                "digest": digests[entry.name],
                "mode": mode,
                "outputs": output_digests(out_dir, entry.name),
            }
        _write_manifest(out_dir, manifest)
        report.rendered = [e.name for e in stale]
