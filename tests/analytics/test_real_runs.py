"""Real runs: the director and the simulator (and the agent's built-in LoadGen workload over the
power-dev protocol) make the trees and run streams; analytics checks and summarises them."""

from __future__ import annotations

import queue
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from mlpower import topology
from mlpower.analytics.check import check_run_dir
from mlpower.analytics.coverage import coverage
from mlpower.analytics.findings import CheckOptions
from mlpower.analytics.rules import RULES, RULES_BY_ID
from mlpower.analytics.service import AnalyticsService
from mlpower.analytics.settings import AnalyticsSettings
from mlpower.analytics.summary import summarize
from mlpower.runview import RunView
from mlpower.schema import LiveFinding, Message, PhaseMark, RunAnalyzed, RunSummary
from mlpower.settings import load_settings

from tests.figures.helpers import wait_for

from .alterations import FAILURES
from .real_runs import TRUE_W, RealRun, samples_recorded
from .trees import rehash

pytestmark = pytest.mark.slow
ACTIVATION = "Uncertainty checking for Yokogawa"


def copy(tree: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tree, tmp_path / tree.name))


def test_direct_scpi_run_checked(real_scpi: RealRun) -> None:
    report = check_run_dir(real_scpi.session, real_scpi.options)
    assert report.kind == "powerdev" and "client" in report.kind_evidence
    status = {f.rule: f for f in report.findings}
    for rule in (r for r in RULES if r.ptdaemon):
        assert status[rule.id].status == "not_applicable"
        assert "measured without PTDaemon" in status[rule.id].message
    passing = {r.id for r in RULES if not r.ptdaemon} - {"debug_disabled", "overrange", "channel_imbalance"}
    assert status["channel_imbalance"].status == "not_applicable"  # one analyzer
    assert {rule: status[rule].status for rule in passing} == {rule: "pass" for rule in passing}
    # the director ran with shortened sleeps, and says so: a real failure, named with its evidence
    assert status["debug_disabled"].status == "fail" and status["debug_disabled"].evidence == {"debug": True}
    assert report.summary is not None and report.summary.efficiency_unit == "samples/J"
    assert report.summary.performance and report.summary.performance_unit == "samples/s"
    assert report.summary.compliant_durations is False  # the agent declared the 6 s run short
    assert "wt310e" in status["ptd_messages"].message


def test_ptdaemon_run_runs_the_ptdaemon_checks(real_ptd: Path) -> None:
    report = check_run_dir(real_ptd)
    assert report.uses_ptdaemon
    assert report.finding("ptd_messages").status == "pass", report.finding("ptd_messages")
    assert report.finding("ptd_config").status == "pass"
    # the emulator's own console, kept by the director: PTD's start-up activation line included
    assert f"{ACTIVATION}WT310 is activated" in (real_ptd / "power" / "ptd_logs.txt").read_text()
    assert report.finding("ptd_log_messages").status == "pass", report.finding("ptd_log_messages")


@pytest.mark.parametrize("rule_id", list(FAILURES))
def test_real_tree_altered_per_rule(rule_id: str, real_scpi: RealRun, real_ptd: Path, tmp_path: Path) -> None:
    needs, alter, re_record, evidence_keys = FAILURES[rule_id]
    session = copy(real_ptd if needs == "ptd" else real_scpi.session, tmp_path)
    if needs == "docs":
        shutil.copy(real_scpi.director / "documents.jsonl", session / "documents.jsonl")
    options = CheckOptions(min_duration_s=2.0) if needs == "ptd" else real_scpi.options
    before = check_run_dir(session, options).finding(rule_id)
    if rule_id == "channel_imbalance":  # one analyzer: nothing to compare until the alteration splits it
        assert before.status == "not_applicable", before
    elif rule_id != "debug_disabled":  # the fast real run already has debug on (see above)
        assert before.status == "pass", before
    alter(session)
    if re_record and (session / "power" / "client.json").exists():
        rehash(session)
    finding = check_run_dir(session, options).finding(rule_id)
    assert finding.status == "fail" and finding.severity == RULES_BY_ID[rule_id].severity, finding
    assert set(evidence_keys) <= set(finding.evidence), finding.evidence


def _truth_check(view: RunView, true_w) -> RunSummary:  # type: ignore[no-untyped-def]
    summary = summarize(view)
    window, source = view.loadgen_window("testing"), view.samples("testing")
    assert window is not None and source is not None
    assert summary.avg_power_w is not None and summary.avg_power_uncertainty_w is not None

    def mean_truth(begin: float, end: float) -> float:
        return float(np.mean([true_w(t) for t in np.linspace(begin, end, 20_000)]))

    truth = mean_truth(window.begin_utc_s, window.end_utc_s)
    assert abs(summary.avg_power_w - truth) <= summary.avg_power_uncertainty_w, (summary, truth)
    # energy is the covered time's: a busy machine may stretch a read interval past one interval + 25 %
    covered = coverage(source.samples, window.begin_utc_s, window.end_utc_s, source.interval_s)
    assert summary.covered_s == covered.covered_s and summary.coverage_ratio is not None
    assert summary.coverage_ratio > 0.9
    true_energy = truth * window.seconds - sum(mean_truth(s.begin_utc_s, s.end_utc_s) * s.seconds
                                               for s in covered.uncovered)
    u_energy = summary.avg_power_uncertainty_w * summary.covered_s
    assert abs(summary.energy_j - summary.avg_power_w * summary.covered_s) <= u_energy  # type: ignore[operator]
    assert abs(summary.energy_j - true_energy) <= u_energy  # type: ignore[operator]
    return summary


def test_constant_load_average_within_uncertainty(real_scpi: RealRun) -> None:
    # the client's tree (its LoadGen window) with the director's stream (per-sample uncertainty)
    view = RunView.read(real_scpi.session)
    view.extend(RunView.read_documents(real_scpi.director / "documents.jsonl").documents.values())
    _truth_check(view, lambda t: TRUE_W)


def test_phase_load_average_within_uncertainty(tmp_path: Path) -> None:
    from mlpower.analyzer_sim.simulator import start_simulator
    from mlpower.director.session import MeasurementSession, SessionConfig, SessionIdentity
    from mlpower.director.session_states import Done, StartPhase, StopPhase
    from mlpower.director.sources import open_source

    # Ranging sees the peak (fixed ranges must hold it); testing then runs a phase profile:
    # 2 s at 150 W, a 1 s ramp, then 320 W.
    with start_simulator(port=0, load="constant:320") as sim:
        source = open_source(f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", update_interval_s=0.25)
        session = MeasurementSession(SessionIdentity("phases"), [("analyzer1", source)],
                                     SessionConfig(tmp_path, sample_interval_s=0.25, sleep_s=0.05, debug=True,
                                                   page_interval_s=0.5))
        session.open()
        session.handle(StartPhase("ranging"))
        wait_for(samples_recorded(session, 3), 30, "3 ranging samples")
        session.handle(StopPhase("ranging"))
        idle_s = time.time() - sim.instrument.start_s + 2.0
        sim.set_load(f"profile:150:320:{idle_s:.3f}:1.0:1000")
        before = session.stream.samples  # type: ignore[union-attr]
        session.handle(StartPhase("testing"))
        begin = time.time() + 0.2
        wait_for(samples_recorded(session, before + 20), 30, "20 testing samples")  # 5 s at 0.25 s
        end = time.time() - 0.2
        session.handle(StopPhase("testing"))
        session.handle(Done())
        view = RunView.read_documents(session.dir / "documents.jsonl")
        # LoadGen's window, as the agent's power_begin/power_end events would mark it
        last = max(view.documents)
        view.add(PhaseMark(run_id=view.run_id, seq=last + 1, name="power_begin", mode="testing", t_utc_s=begin,
                           source="loadgen"))
        view.add(PhaseMark(run_id=view.run_id, seq=last + 2, name="power_end", mode="testing", t_utc_s=end,
                           source="loadgen"))
        summary = _truth_check(view, lambda t: sim.model.power_w(t - sim.instrument.start_s))
    assert summary.flagged_samples_in_window == 0 and summary.samples_in_window >= 15


@pytest.mark.rabbitmq
def test_live_uncertainty_finding_on_the_bus_before_the_run_ends(rabbit_bus, unique: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mlpower.analyzer_sim.simulator import start_simulator
    from mlpower.director.session import MeasurementSession, SessionConfig, SessionIdentity
    from mlpower.director.session_states import Done, StartPhase, StopPhase
    from mlpower.director.sources import open_source

    lab = f"lab{unique}"
    settings = load_settings(AnalyticsSettings, results_dir=tmp_path / "results", lab=lab)
    service = AnalyticsService(
        settings, rabbit_bus,
        runs_queue=topology.QueueSpec("", topology.RUNS_EXCHANGE, (f"{lab}.#",), exclusive=True),
        events_queue=topology.QueueSpec("", topology.EVENTS_EXCHANGE, (f"workload_phase.{lab}.#",), exclusive=True))
    got: queue.Queue[Message] = queue.Queue()
    watcher = rabbit_bus.subscribe(topology.QueueSpec("", topology.EVENTS_EXCHANGE, (f"*.{lab}.#",), exclusive=True),
                                   lambda m, d: got.put(m))
    service.start()
    sim = start_simulator(port=0, load=f"constant:{TRUE_W}")
    try:
        source = open_source(f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", update_interval_s=0.25)
        session = MeasurementSession(SessionIdentity(f"live-{unique}", lab=lab), [("analyzer1", source)],
                                     SessionConfig(tmp_path, sample_interval_s=0.25, sleep_s=0.05, debug=True,
                                                   page_interval_s=0.25, page_max_samples=4),
                                     bus=rabbit_bus)
        session.open()
        session.handle(StartPhase("ranging"))
        wait_for(samples_recorded(session, 4), 30, "4 ranging samples")
        session.handle(StopPhase("ranging"))
        session.handle(StartPhase("testing"))  # fixed ranges for 250 W ...
        sim.set_load("constant:3")  # ... and then the load all but vanishes: uncertainty far above 1 %
        deadline = time.monotonic() + 20
        live = None
        while live is None and time.monotonic() < deadline:
            try:
                message = got.get(timeout=0.2)
            except queue.Empty:
                continue
            if isinstance(message, LiveFinding) and message.finding.rule == "uncertainty":
                live = message
        assert live is not None, "no live uncertainty finding while the run was still measuring"
        assert not session.ended  # seen before the run ends
        assert live.run_id == session.run_id and live.finding.evidence["max_relative"] > 0.01
        assert "testing phase" in live.finding.evidence["window_source"]  # no LoadGen in a direct run
        session.handle(StopPhase("testing"))
        session.handle(Done())
        deadline = time.monotonic() + 20
        analyzed = None
        while analyzed is None and time.monotonic() < deadline:
            try:
                message = got.get(timeout=0.2)
            except queue.Empty:
                continue
            if isinstance(message, RunAnalyzed) and message.run_id == session.run_id:
                analyzed = message
        assert analyzed is not None and analyzed.verdict == "fail"
        # after the run, the same rule over the whole testing phase
        assert {f.rule: f.status for f in analyzed.findings}["uncertainty"] == "fail"
    finally:
        sim.stop()
        watcher.close()
        service.stop()
