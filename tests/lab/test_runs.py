"""`mlpower runs`: past runs read from results folders, every value whole in 80 columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mlpower.analytics.check import check_run_dir
from mlpower.lab.report import write_report
from mlpower.schema import RunAnalyzed

from tests.analytics.trees import TreeSpec, build_tree


def analyze(folder: Path) -> RunAnalyzed:
    """What `mlpower demo` and `lab run` leave beside a run: its analysis as compliance.json."""
    report = check_run_dir(folder)
    analyzed = RunAnalyzed(run_id=folder.name, sut="sut", summary=report.summary, findings=report.findings,
                           verdict=report.verdict, t_utc_s=1.0)
    write_report(analyzed, folder / "compliance.json")
    return analyzed


def test_runs_lists_id_sut_start_verdict_power_efficiency_and_path(tmp_path: Path) -> None:
    results = tmp_path / "results"
    older = build_tree(results / "demo", TreeSpec(sid="2026-11-28_10-00-00_aaaaaa", ptdaemon=False,
                                                  t0_utc_s=1_795_860_000.0, testing_power_w=300.0))
    newer = build_tree(results, TreeSpec(sid="2026-11-29_10-00-00_bbbbbb", ptdaemon=False,
                                         t0_utc_s=1_795_946_400.0))
    analyzed = analyze(older)
    assert analyzed.summary.avg_power_w is not None and analyzed.summary.efficiency is not None
    (results / "not-a-run").mkdir()

    listed = subprocess.run([sys.executable, "-m", "mlpower", "runs", "--json", str(results)], capture_output=True,
                            text=True, check=True).stdout
    rows = json.loads(listed)
    assert [row["run_id"] for row in rows] == [older.name, newer.name]  # oldest first
    first, second = rows
    assert first["sut"] == "sut" and first["when_utc"] == "2026-11-28 10:00:00Z"
    assert first["verdict"] == analyzed.verdict and first["avg_power_w"] == analyzed.summary.avg_power_w
    assert first["efficiency"] == analyzed.summary.efficiency and first["path"] == str(older)
    assert second["verdict"] == "not analyzed" and second["avg_power_w"] is None  # no compliance.json beside it

    table = subprocess.run([sys.executable, "-m", "mlpower", "runs", str(results)], capture_output=True, text=True,
                           check=True, env={**os.environ, "COLUMNS": "80"}, cwd=tmp_path).stdout
    assert max(len(line) for line in table.splitlines()) <= 80
    for value in (older.name, newer.name, "2026-11-28 10:00:00Z", f"{analyzed.summary.avg_power_w:,.1f} W",
                  "not analyzed"):
        assert value in table, (value, table)
    # a long path folds within its cell, never cut: read the first column's lines together
    first_column = "".join(line.split("│")[1].strip() for line in table.splitlines() if line.startswith("│"))
    assert f"results/demo/{older.name}" in first_column and f"results/{newer.name}" in first_column, table
