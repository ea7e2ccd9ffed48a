"""`make demo`'s path with shorter durations: one process, in-memory bus, a real measurement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlpower.analytics.check import check_run_dir
from mlpower.lab.demo import DemoOptions, run_demo
from mlpower.lab.progress import Progress
from mlpower.schema import PhaseMark, RunStart, SampleFlag, SamplePage
from rich.console import Console

from tests.shared.examples import example_of


@pytest.mark.slow
def test_demo_measures_a_run_end_to_end_and_prints_the_summary(tmp_path: Path) -> None:
    console = Console(record=True, width=140)
    # what the live line said while the run was still going: (phase, samples, the line), per update
    during: list[tuple[str, int, str]] = []

    def watch(progress: Progress) -> None:
        if progress.analyzed is None and progress.stopped is None:
            during.append((progress.phase, progress.samples, progress.line()))

    result = run_demo(DemoOptions(out=tmp_path, duration_s=2.0, analyzer_sleep_s=0.2, timeout_s=240,
                                  on_progress=watch), console)
    # the live line moved during the run: samples counted and watts shown in both phases, before the end
    assert {"ranging", "testing"} <= {phase for phase, samples, _ in during if samples > 0}, during
    assert len({samples for _, samples, _ in during}) >= 3, during  # counted as they came, not at the end
    assert any(p == "testing" and "- W" not in line for p, _, line in during), during  # live watts
    summary = result.analyzed.summary
    # the simulator's load follows the workload: 450 W during LoadGen's window (idle is 120 W)
    assert summary.avg_power_w is not None and summary.avg_power_uncertainty_w is not None
    assert abs(summary.avg_power_w - 450.0) <= summary.avg_power_uncertainty_w + 0.01 * 450.0
    assert summary.window_s and summary.energy_j
    # energy is over the covered time only (a sample a busy machine missed leaves its time uncovered)
    assert summary.covered_s and 0 < summary.covered_s <= summary.window_s + 1e-9
    assert abs(summary.energy_j - summary.avg_power_w * summary.covered_s) <= 0.05 * summary.energy_j
    assert summary.performance and summary.efficiency_unit == "samples/J"
    assert summary.compliant_durations is False
    assert result.analyzed.verdict == "fail"  # shortened sleeps and durations: never passed as compliant
    text = console.export_text()
    for label in ("average power", "energy in window", "efficiency", "compliance verdict", "NON-COMPLIANT",
                  "run tree", "compliance report", "run figures"):
        assert label in text
    assert "covered)" in text  # the energy says how much of the window it covers
    # off a terminal the live line is printed as it changes: samples shown before the summary
    live_lines = [line for line in text[:text.index("compliance verdict")].splitlines() if " samples, " in line]
    assert any(line.split(" samples, ")[0].split()[-1] != "0" for line in live_lines), live_lines
    assert any(line.startswith("testing") for line in live_lines), live_lines
    report = json.loads(result.report_path.read_text())
    assert report["run_id"] == result.analyzed.run_id and report["findings"]
    # one verdict: `mlpower check` on the demo's run folder judges it as the demo printed it
    checked = check_run_dir(result.run_dir)
    assert checked.kind == "bus" and checked.verdict == result.analyzed.verdict
    assert [(f.rule, f.status, f.severity) for f in checked.findings] == \
        [(f.rule, f.status, f.severity) for f in result.analyzed.findings]
    for name in ("power/server.json", "ranging/spl.txt", "run_1/spl.txt", "run_1/mlperf_log_detail.txt",
                 "documents.jsonl", "samples.parquet"):
        assert (result.run_dir / name).is_file(), name
    assert any(f.endswith("_trace.png") for f in result.figure_files)
    assert all(Path(f).is_file() for f in result.figure_files)


def test_progress_follows_its_run_and_never_shows_a_flagged_sample_as_power() -> None:
    progress = Progress(run_id="r1")
    progress.update(example_of(RunStart, "r1", t_utc_s=100.0))
    progress.update(example_of(PhaseMark, "r1", name="testing_begin"))
    progress.update(example_of(RunStart, "other", t_utc_s=0.0))
    page = example_of(SamplePage, "r1", t_utc_s=[101.0, 102.0], power_w=[250.0, 999.0],
                      flags=[0, int(SampleFlag.OVERRANGE)])
    progress.update(page)
    assert progress.phase == "testing"
    assert progress.last_power_w == 250.0 and progress.flagged == 1 and progress.samples == 2
    assert progress.elapsed_s() == 2.0
    assert "testing" in progress.line() and "250.0 W" in progress.line()
    assert len(progress.line()) < 80


def test_progress_started_before_its_run_keeps_that_runs_early_messages_only() -> None:
    progress = Progress()  # lab run listens before the director names the run
    progress.update(example_of(RunStart, "earlier", t_utc_s=1.0))
    progress.update(example_of(RunStart, "r2", t_utc_s=100.0))
    progress.update(example_of(SamplePage, "earlier", t_utc_s=[2.0, 3.0], power_w=[1.0, 1.0], flags=[0, 0]))
    assert progress.updates == 0 and progress.samples == 0
    progress.follow("r2")
    progress.update(example_of(SamplePage, "r2", t_utc_s=[101.0, 102.0], power_w=[300.0, 300.0], flags=[0, 0]))
    assert progress.started_utc_s == 100.0 and progress.samples == 2 and progress.last_power_w == 300.0
    assert progress.updates == 2
