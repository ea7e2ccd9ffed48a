"""Real runs: the director and the simulator (and the agent's built-in LoadGen workload over the
power-dev protocol) make the trees and run streams; analytics checks and summarises them."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mlpower import topology
from mlpower.analytics.check import check_run_dir
from mlpower.analytics.loadgen import DetailLog, read_detail
from mlpower.analytics.rules import RULES, RULES_BY_ID, CheckOptions
from mlpower.analytics.service import AnalyticsService
from mlpower.analytics.settings import AnalyticsSettings
from mlpower.analytics.summary import analyze_documents
from mlpower.director.session_states import Done, StartPhase, StopPhase
from mlpower.runstream import read_documents
from mlpower.schema import LiveFinding, Message, RunAnalyzed, RunSummary
from mlpower.settings import load_settings

from tests.director.drive import measure, run_phases

from .alterations import FAILURES
from .trees import ModeTimes, TreeSpec, detail_log, rehash, summary_log

pytestmark = pytest.mark.slow
TRUE_W = 250.0
ACTIVATION = "Uncertainty checking for Yokogawa"


@dataclass(frozen=True)
class RealRun:
    session: Path  # the client's output tree (what `mlpower check` is given)
    director: Path  # the director's own folder for the session (documents.jsonl, samples.parquet)
    options: CheckOptions


@pytest.fixture(scope="session")
def real_scpi(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    """The agent's client against the director's power-dev server, the WT310E simulator measuring."""
    from mlpower.analyzer_sim.simulator import start_simulator
    from mlpower.director.director import Director
    from mlpower.director.powerdev_server import PowerDevServer
    from mlpower.director.settings import DirectorSettings

    base = tmp_path_factory.mktemp("real-scpi")
    with start_simulator(port=0, load=f"constant:{TRUE_W}") as simulator:
        settings = load_settings(
            DirectorSettings, analyzer=f"TCPIP0::127.0.0.1::{simulator.port}::SOCKET", host="127.0.0.1",
            powerdev_port=0, http_port=0, results_dir=base / "director", analyzer_sleep_s=0.5,
            sample_interval_s=1.0, bus_mode=False)
        server = PowerDevServer(Director(settings), host="127.0.0.1", port=0).start()
        try:
            # The LoadGen result's validity and the ranging/testing lengths depend on how busy this
            # machine is; a run that misses them by chance is made again once.
            for attempt in range(2):
                out = base / f"agent{attempt}"
                done = subprocess.run(
                    [sys.executable, "-m", "mlpower.sut_agent", "--server", f"127.0.0.1:{server.port}",
                     "--workload", "builtin:offline", "--out", str(out), "--label", f"analytics{attempt}",
                     "--duration-s", "6"], capture_output=True, text=True, timeout=240)
                assert done.returncode == 0, done.stderr[-3000:]
                (session,) = [p for p in out.iterdir() if p.name != "loadgen_logs"]
                report = check_run_dir(session)
                if all(report.finding(rule).status == "pass"
                       for rule in ("loadgen_result_valid", "ranging_testing_duration")):
                    break
        finally:
            server.stop()
    sources = json.loads((session / "power" / "client.json").read_text())["sources"]
    server_sources = json.loads((session / "power" / "server.json").read_text())["sources"]
    return RealRun(session, base / "director" / session.name,
                   CheckOptions(sources_checksums=(sources, server_sources), min_duration_s=2.0))


@pytest.fixture(scope="session")
def real_ptd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A director session measured through the PTDaemon emulator; the test adds LoadGen logs whose
    window lies inside each phase (the PTD path of the power-dev server is exercised by the director)."""
    from mlpower.analyzer_sim.simulator import start_ptd
    from mlpower.director.session import MeasurementSession, SessionConfig, SessionIdentity
    from mlpower.director.sources import open_source

    base = tmp_path_factory.mktemp("real-ptd")
    log_path, console_path = base / "ptd_data.log", base / "ptd_console.txt"
    with start_ptd(port=0, log_path=log_path, console_path=console_path, load=f"constant:{TRUE_W}") as ptd:
        # the director reads PTDaemon's data log and console as power-dev does for its own child
        source = open_source(f"ptd://127.0.0.1:{ptd.port}", data_log=log_path, console_log=console_path)
        session = MeasurementSession(SessionIdentity("ptd-run"), [("analyzer1", source)],
                                     SessionConfig(base / "results", sample_interval_s=1.0, sleep_s=0.05))
        run_phases(session, samples=3)
    assert session.state.value == "done", session.status_reason
    server = json.loads((session.dir / "power" / "server.json").read_text())
    for mode, folder in (("ranging", "ranging"), ("testing", "run_1")):
        walls = [p[0] for p in server["phases"][mode]]
        times = ModeTimes(walls, walls[1] + 0.3, walls[2] - 0.3, [])
        (session.dir / folder / "mlperf_log_detail.txt").write_text(detail_log(TreeSpec(), times))
        (session.dir / folder / "mlperf_log_summary.txt").write_text(summary_log(TreeSpec()))
    return session.dir


def copy(tree: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tree, tmp_path / tree.name))


def test_direct_scpi_run_checked(real_scpi: RealRun) -> None:
    report = check_run_dir(real_scpi.session, real_scpi.options)
    status = {f.rule: f for f in report.findings}
    for rule in (r for r in RULES if r.ptdaemon_only):
        assert status[rule.id].status == "not_applicable"
        assert "measured without PTDaemon" in status[rule.id].message
    passing = {r.id for r in RULES if not r.ptdaemon_only} - {"debug_disabled", "overrange"}
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
    if rule_id != "debug_disabled":  # the fast real run already has debug on (see above)
        assert before.status == "pass", before
    alter(session)
    if re_record and (session / "power" / "client.json").exists():
        rehash(session)
    finding = check_run_dir(session, options).finding(rule_id)
    assert finding.status == "fail" and finding.severity == RULES_BY_ID[rule_id].severity, finding
    assert set(evidence_keys) <= set(finding.evidence), finding.evidence


def _truth_check(documents: list, detail: DetailLog, true_w) -> RunSummary:  # type: ignore[no-untyped-def]
    summary = analyze_documents(documents, detail=detail).summary
    assert summary.avg_power_w is not None and summary.avg_power_uncertainty_w is not None
    begin, end = detail.power_begin_utc_s, detail.power_end_utc_s
    truth = float(np.mean([true_w(t) for t in np.linspace(begin, end, 20_000)]))  # type: ignore[arg-type]
    assert abs(summary.avg_power_w - truth) <= summary.avg_power_uncertainty_w, (summary, truth)
    u_energy = summary.avg_power_uncertainty_w * summary.window_s  # type: ignore[operator]
    assert abs(summary.energy_j - summary.avg_power_w * summary.window_s) <= u_energy  # type: ignore[operator]
    assert abs(summary.energy_j - truth * summary.window_s) <= u_energy  # type: ignore[operator]
    return summary


def test_constant_load_average_within_uncertainty(real_scpi: RealRun) -> None:
    documents = list(read_documents(real_scpi.director / "documents.jsonl"))
    _truth_check(documents, read_detail(real_scpi.session / "run_1" / "mlperf_log_detail.txt"), lambda t: TRUE_W)


def test_phase_load_average_within_uncertainty(tmp_path: Path) -> None:
    from mlpower.analyzer_sim.simulator import start_simulator
    from mlpower.director.session import MeasurementSession, SessionConfig, SessionIdentity
    from mlpower.director.sources import open_source

    # Ranging sees the peak (fixed ranges must hold it); testing then runs a phase profile:
    # 2 s at 150 W, a 1 s ramp, then 320 W.
    with start_simulator(port=0, load="constant:320") as sim:
        source = open_source(f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", update_interval_s=0.25)
        session = MeasurementSession(SessionIdentity("phases"), [("analyzer1", source)],
                                     SessionConfig(tmp_path, sample_interval_s=0.25, sleep_s=0.05, debug=True,
                                                   page_interval_s=0.5))
        session.open()
        measure(session, "ranging", samples=3)
        idle_s = time.time() - sim.instrument.start_s + 2.0
        sim.set_load(f"profile:150:320:{idle_s:.3f}:1.0:1000")
        session.handle(StartPhase("testing"))
        begin = time.time() + 0.2
        time.sleep(5.0)
        end = time.time() - 0.2
        session.handle(StopPhase("testing"))
        session.handle(Done())
        documents = list(read_documents(session.dir / "documents.jsonl"))
        summary = _truth_check(documents, DetailLog("window", begin, end),
                               lambda t: sim.model.power_w(t - sim.instrument.start_s))
    assert summary.flagged_samples_in_window == 0 and summary.samples_in_window >= 15


@pytest.mark.rabbitmq
def test_live_uncertainty_finding_on_the_bus_before_the_run_ends(rabbit_bus, unique: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mlpower.analyzer_sim.simulator import start_simulator
    from mlpower.director.session import MeasurementSession, SessionConfig, SessionIdentity
    from mlpower.director.sources import open_source

    lab = f"lab{unique}"
    settings = load_settings(AnalyticsSettings, results_dir=tmp_path / "results", lab=lab)
    service = AnalyticsService(
        settings, rabbit_bus,
        runs_queue=topology.QueueSpec("", topology.RUNS_EXCHANGE, (f"{lab}.#",), exclusive=True),
        events_queue=topology.QueueSpec("", topology.EVENTS_EXCHANGE, (f"run_completed.{lab}.#",), exclusive=True))
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
        measure(session, "ranging", samples=5)
        session.handle(StartPhase("testing"))  # fixed ranges for 250 W ...
        sim.set_load("constant:3")  # ... and then the load all but vanishes: uncertainty far above 1 %
        deadline = time.monotonic() + 20
        live = None
        while live is None and time.monotonic() < deadline:
            try:
                message = got.get(timeout=0.2)
            except queue.Empty:
                continue
            if isinstance(message, LiveFinding) and message.finding.rule == "live_uncertainty":
                live = message
        assert live is not None, "no live uncertainty finding while the run was still measuring"
        assert not session.ended  # seen before the run ends
        assert live.run_id == session.run_id and live.finding.evidence["relative"] > 0.01
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
        assert "live_uncertainty" in {f.rule for f in analyzed.findings}
    finally:
        sim.stop()
        watcher.close()
        service.stop()


def test_bus_mode_lab_run_is_analyzed(tmp_path: Path) -> None:
    """The whole lab in one process on the in-memory bus: StartRun -> director (simulator) and agent
    (built-in LoadGen) -> run documents and RunCompleted -> analytics -> RunAnalyzed."""
    from mlpower.analyzer_sim.simulator import start_simulator
    from mlpower.bus import InMemoryBus
    from mlpower.director.bus_edge import BusEdge
    from mlpower.director.director import Director
    from mlpower.director.settings import DirectorSettings
    from mlpower.schema import StartRun
    from mlpower.sut_agent.bus_mode import AgentService
    from mlpower.sut_agent.settings import Settings as AgentSettings

    bus = InMemoryBus()
    got: queue.Queue[Message] = queue.Queue()
    bus.subscribe(topology.QueueSpec("", topology.EVENTS_EXCHANGE, ("run_analyzed.#",), exclusive=True),
                  lambda m, d: got.put(m))
    analytics = AnalyticsService(load_settings(AnalyticsSettings, bus="memory", results_dir=tmp_path / "analytics"),
                                 bus)
    analytics.start()
    with start_simulator(port=0, load=f"constant:{TRUE_W}") as simulator:
        director = Director(load_settings(
            DirectorSettings, analyzer=f"TCPIP0::127.0.0.1::{simulator.port}::SOCKET", host="127.0.0.1",
            powerdev_port=0, http_port=0, results_dir=tmp_path / "director", analyzer_sleep_s=0.3,
            sample_interval_s=1.0, bus="memory"), bus=bus)
        bus_edge = BusEdge(director, bus).start()
        agent = AgentService(load_settings(AgentSettings, results_dir=tmp_path / "agent", duration_s=3.0), bus).start()
        try:
            bus.publish(StartRun(sut="sut", run_id="lab-run", scenario="Offline", workload="builtin:offline",
                                 sample_interval_s=1.0, settings={"duration_s": 3.0}),
                        topology.command_key("director", "sut"))
            analyzed = got.get(timeout=180)
        finally:
            agent.close()
            bus_edge.stop()
            analytics.stop()
            bus.close()
    assert isinstance(analyzed, RunAnalyzed) and analyzed.run_id == "lab-run"
    summary = analyzed.summary
    assert summary.avg_power_w is not None and summary.avg_power_uncertainty_w is not None
    assert abs(summary.avg_power_w - TRUE_W) <= summary.avg_power_uncertainty_w
    assert summary.performance and summary.efficiency_unit == "samples/J"  # from the agent's LoadGen log
    assert summary.compliant_durations is False
    status = {f.rule: (f.status, f.severity) for f in analyzed.findings}
    assert status["min_duration"] == ("fail", "warning")  # a declared short run: reported, not fatal
    for rule in ("samples_in_window", "uncertainty", "overrange", "sample_interval"):
        assert status[rule] == ("pass", "error"), (rule, analyzed.findings)  # from the run stream
    assert status["ptd_messages"][0] == "not_applicable"  # from the director's server.json
    # the director's fast sleeps mark the run debug: it would not pass review, and says why
    assert status["debug_disabled"] == ("fail", "error") and analyzed.verdict == "fail"
