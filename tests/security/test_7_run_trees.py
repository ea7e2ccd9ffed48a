"""Crafted run trees for the commands that read them (``mlpower runs``, ``mlpower check``): a run tree
may come from elsewhere (a colleague's results folder, a submission), so its names, links and file
contents are hostile input. Each command ends with its own answer (never a traceback), reads only
the tree's own files (a link out of it is not followed, so a finding never quotes a file from
outside), stays bounded on a link to an endless device, and shows the tree's text escaped (no
rich markup, no terminal control sequences)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlpower.schema import RunAnalyzed, RunStart, RunSummary, encode

from tests.analytics.trees import TreeSpec, build_tree
from tests.security.lab import SENTINEL
from tests.security.ledger import LEDGER

HOSTILE_TEXTS = ("[/]", "[bold red]styled[/bold red]", "\x1b]0;title\x07\x1b[2J", "[link=file:///etc/passwd]x[/link]")


def mlpower(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # a memory ceiling (2 GiB of address space): an unbounded read of /dev/zero fails here instead of
    # taking the machine's memory
    return subprocess.run([sys.executable, "-m", "mlpower", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={**os.environ, "COLUMNS": "120"},
                          preexec_fn=lambda: __import__("resource").setrlimit(
                              __import__("resource").RLIMIT_AS, (2 << 30, 2 << 30)))


def answered(done: subprocess.CompletedProcess[str], allowed: tuple[int, ...] = (0, 1, 2)) -> bool:
    """The command gave its own answer: a known status, no traceback, no leak, no control character."""
    output = done.stdout + done.stderr
    return (done.returncode in allowed and "Traceback" not in output and SENTINEL not in output
            and "\x1b]" not in output and "\x1b[2J" not in output)


def _run_folder(results: Path, name: str, sut: str = "sut", t_utc_s: float = 1_795_860_000.0) -> Path:
    folder = results / name
    folder.mkdir(parents=True)
    start = RunStart(run_id="r1", seq=0, lab="lab", sut=sut, analyzer="a", t_utc_s=t_utc_s)
    (folder / "documents.jsonl").write_bytes(encode(start) + b"\n")
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside every run tree holding the sentinel, shaped as the file a link pretends to be."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(f"{SENTINEL}\nroot:x:0:0:{SENTINEL}\n")
    analyzed = RunAnalyzed(run_id="r1", sut=SENTINEL, verdict="pass", t_utc_s=1.0,
                           summary=RunSummary(run_id="r1", source=SENTINEL, method=SENTINEL, avg_power_w=1.0))
    (folder / "compliance.json").write_text(analyzed.model_dump_json())
    (folder / "server.json").write_text(json.dumps({"mlpower": {"status": SENTINEL}}))
    return folder


def test_runs_shows_a_crafted_trees_names_escaped_and_never_breaks(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for i, text in enumerate(HOSTILE_TEXTS):
        _run_folder(results, f"sut-{i}", sut=text)
        (results / f"name-{i}-{text.replace('/', '_')}").mkdir()
        _run_folder(results / f"name-{i}-{text.replace('/', '_')}", "x", sut="plain")
    _run_folder(results, "far-future", t_utc_s=1e300)
    for args in (("runs", str(results)), ("runs", "--json", str(results))):
        done = mlpower(*args, cwd=tmp_path)
        refused = answered(done, (0,))
        LEDGER.attempt("crafted run tree", f"mlpower {' '.join(args[:-1])}: markup, control characters", refused)
        assert refused, done.stdout[-2000:] + done.stderr[-2000:]
    table = mlpower("runs", str(results), cwd=tmp_path).stdout
    assert "[/]" in table and "[bold red]styled" in table  # shown as text, not taken as styles
    assert "\\x1b]0;title\\x07" in table


@pytest.mark.parametrize("name", ["compliance.json", "power/server.json", "documents.jsonl"])
def test_runs_follows_no_link_out_of_a_run_or_into_an_endless_device(tmp_path: Path, outside: Path,
                                                                      name: str) -> None:
    results = tmp_path / "results"
    for target in (Path("/dev/zero"), outside / Path(name).name):
        folder = _run_folder(results, f"link-{target.name}")
        link = folder / name
        link.parent.mkdir(exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        done = mlpower("runs", "--json", str(results), cwd=tmp_path)
        rows = json.loads(done.stdout) if done.returncode == 0 else [{}]
        # nothing of the linked file is taken: no analysis, no status, no start (or no run at all:
        # documents.jsonl -> /dev/zero is no file, so no run folder)
        row = rows[0] if rows else {"verdict": "not analyzed", "status": "unknown", "started_utc_s": None}
        refused = answered(done, (0,)) and row.get("verdict") == "not analyzed" and row.get("status") == "unknown"
        refused = refused and (name != "documents.jsonl" or row.get("started_utc_s") is None)
        LEDGER.attempt("crafted run tree", f"mlpower runs: {name} -> {target.name}", refused)
        assert refused, done.stdout[-2000:] + done.stderr[-2000:]
        shutil.rmtree(folder)


@pytest.fixture
def run_tree(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "trees", TreeSpec(sid="2026-11-28_10-00-00_crafted", ptdaemon=True))


LINKED = ("run_1/spl.txt", "ranging/spl.txt", "power/server.json", "power/client.json", "power/ptd_logs.txt",
          "run_1/mlperf_log_detail.txt", "run_1/mlperf_log_summary.txt", "run_1/ptd_out.txt")


@pytest.mark.parametrize("relative", LINKED)
def test_check_quotes_no_file_a_link_points_out_to(run_tree: Path, outside: Path, tmp_path: Path,
                                                   relative: str) -> None:
    (run_tree / relative).unlink(missing_ok=True)
    (run_tree / relative).symlink_to(outside / "secret.txt")
    report = tmp_path / "report.json"
    done = mlpower("check", str(run_tree), "--json", str(report), cwd=tmp_path)
    refused = answered(done) and SENTINEL not in report.read_text()
    LEDGER.attempt("crafted run tree", f"mlpower check: {relative} -> a file outside", refused)
    assert refused, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"{relative}: a link out of the run folder" in report.read_text()


@pytest.mark.parametrize("relative,content", [
    ("samples.parquet", b"PAR1" + os.urandom(2048) + b"PAR1"),
    ("documents.jsonl", b'{"v":1,"type":"run.start"' + b"x" * 200_000 + b"\n\xff\xfe\x00garbage\n"),
    ("run_1/spl.txt", b"\x00\xff" * 5000 + b"\nTime,not-a-time,Watts,nan,Volts,inf\n"),
    ("power/server.json", b'{"a":' * 50_000),  # nesting deeper than any parser's recursion
    ("run_1/mlperf_log_detail.txt", b":::MLLOG " + b"[" * 100_000 + b"\n"),
], ids=["parquet", "documents", "spl", "server-json-deep", "detail-deep"])
def test_check_answers_a_malformed_file_with_a_finding_not_a_crash(run_tree: Path, tmp_path: Path,
                                                                   relative: str, content: bytes) -> None:
    (run_tree / relative).write_bytes(content)
    done = mlpower("check", str(run_tree), cwd=tmp_path)
    refused = answered(done)
    LEDGER.attempt("crafted run tree", f"mlpower check: malformed {relative}", refused)
    assert refused, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("where", ["/etc", "/", "/dev", "/proc/self"])
def test_check_and_runs_pointed_outside_a_results_folder_answer_in_one_line(tmp_path: Path, where: str) -> None:
    for args in (("check", where), ("runs", where)):
        done = mlpower(*args, cwd=tmp_path)
        refused = answered(done) and len(done.stderr.strip().splitlines()) <= 1
        LEDGER.attempt("crafted run tree", f"mlpower {args[0]} {where}", refused)
        assert refused, done.stdout[-2000:] + done.stderr[-2000:]
