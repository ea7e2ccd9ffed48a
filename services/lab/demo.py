"""``mlpower demo``: one complete measurement in one process, shown as it happens.

The embedded lab (in-memory bus by default) runs the MLPerf flow: the director ranges and then
tests the simulated WT310E while the agent runs the built-in LoadGen workload each time; the
simulator's load follows the workload, analytics summarises and checks the run, figures draws it.
Durations are shortened, so the run is marked non-compliant and the report says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpower import topology
from mlpower.bus import Bus, InMemoryBus, Subscription
from mlpower.lab.embedded import EmbeddedLab, LabOptions
from mlpower.lab.errors import LabError
from mlpower.lab.liveview import LiveView
from mlpower.lab.progress import Progress
from mlpower.lab.report import print_summary, write_report
from mlpower.schema import RunAnalyzed, StartRun, WorkloadRequest
from mlpower.timeutil import now_utc_s
from rich.console import Console

SCENARIOS = {"offline": "Offline", "server": "Server", "singlestream": "SingleStream"}


@dataclass(frozen=True)
class DemoOptions:
    out: Path
    scenario: str = "offline"
    duration_s: float = 5.0
    sample_interval_s: float = 1.0
    analyzer_sleep_s: float = 1.0
    timeout_s: float = 240.0
    figures_timeout_s: float = 120.0
    on_progress: Callable[[Progress], None] | None = None  # called on every update (tests watch the run)


@dataclass(frozen=True)
class DemoResult:
    analyzed: RunAnalyzed
    run_dir: Path
    report_path: Path
    figure_files: list[str]


def _listen(bus: Bus, lab: str, progress: Progress) -> list[Subscription]:
    def update(message: Any, _delivery: Any) -> None:
        progress.update(message)

    return [bus.subscribe(topology.QueueSpec("", exchange, (pattern,), durable=False, exclusive=True), update)
            for exchange, pattern in ((topology.RUNS_EXCHANGE, topology.runs_of_lab(lab)),
                                      (topology.EVENTS_EXCHANGE, f"*.{topology.segment(lab)}.*"))]


def _wait_for_figures(lab: EmbeddedLab, run_id: str, timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = [job for job in list(lab.figures.jobs.values()) if job.run_id == run_id]
        if jobs and jobs[-1].done.wait(timeout=max(0.0, deadline - time.monotonic())):
            job = jobs[-1]
            if job.error:
                raise LabError(f"figures for run {run_id} failed: {job.error}")
            return list((job.run_figures or {}).get("files", []))
        time.sleep(0.1)
    raise LabError(f"figures for run {run_id} not rendered within {timeout_s:.0f} s")


def run_demo(options: DemoOptions, console: Console, bus: Bus | None = None,
             lab_options: LabOptions | None = None) -> DemoResult:
    if options.scenario not in SCENARIOS:
        raise LabError(f"unknown scenario {options.scenario!r}: choose one of {', '.join(SCENARIOS)}")
    own_bus = bus is None
    bus = bus or InMemoryBus()
    try:
        return _run(options, console, bus, lab_options)
    finally:
        if own_bus:
            bus.close()


def _run(options: DemoOptions, console: Console, bus: Bus, lab_options: LabOptions | None) -> DemoResult:
    lab_options = lab_options or LabOptions(results_dir=options.out, sample_interval_s=options.sample_interval_s,
                                            analyzer_sleep_s=options.analyzer_sleep_s)
    run_id = time.strftime("demo-%Y%m%dT%H%M%SZ", time.gmtime(now_utc_s()))
    progress = Progress(run_id=run_id, on_update=options.on_progress)
    listeners = _listen(bus, lab_options.lab, progress)
    console.print(f"[bold]mlpower demo[/bold]: {SCENARIOS[options.scenario]} scenario, "
                  f"{options.duration_s:.0f} s per LoadGen run (shortened: non-compliant), results in {options.out}")
    try:
        with EmbeddedLab(lab_options, bus) as lab:
            console.print(f"simulated WT310E at {lab.analyzer_resource} (load follows the SUT agent's workload); "
                          f"director power-dev server on 127.0.0.1:{lab.director.powerdev_port}")
            bus.publish(
                StartRun(sut=lab_options.sut, run_id=run_id, benchmark="resnet-numpy (built-in)",
                         scenario=SCENARIOS[options.scenario],
                         workload=WorkloadRequest(name=f"builtin:{options.scenario}", duration_s=options.duration_s),
                         sample_interval_s=options.sample_interval_s),
                topology.command_key("director", lab_options.sut, lab=lab_options.lab),
            )
            LiveView(console, progress).follow(lambda: progress.analyzed is not None or progress.failed,
                                               options.timeout_s, f"run {run_id}")
            stop = progress.stopped
            if progress.failed and stop is not None:
                raise LabError(f"run {run_id} {stop.status}: {stop.reason or 'the director gave no reason'}")
            analyzed = progress.analyzed
            assert analyzed is not None
            console.print("rendering the run's figures ...")
            figure_files = _wait_for_figures(lab, run_id, options.figures_timeout_s)
    finally:
        for listener in listeners:
            listener.close()
    run_dir = options.out / run_id
    report_path = write_report(analyzed, run_dir / "compliance.json")
    print_summary(console, analyzed, {
        "run tree": run_dir,
        "compliance report": report_path,
        "run figures": [f for f in figure_files if f.endswith(".png")] or ["(none rendered)"],
    })
    return DemoResult(analyzed, run_dir, report_path, figure_files)
