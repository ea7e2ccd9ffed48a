"""Real runs of each kind, made by the real components (WT310E simulator or PTDaemon emulator,
director, SUT agent with its built-in LoadGen workload, analytics on a bus), once per session:

* ``real_scpi``: a power-dev client session (the agent's client against the director's power-dev
  server), measured by direct SCPI;
* ``real_bus``: a bus-mode run (StartRun -> director -> agent), the agent's LoadGen logs in the
  director's run folder as in ``mlpower demo`` and ``mlpower lab``;
* ``real_direct``: the director's session driven directly over SCPI (no client, no bus workload);
* ``real_ptd``: a direct session measured through the PTDaemon emulator, LoadGen logs added.

Each run analysed live by the analytics service keeps its ``RunAnalyzed`` and the service's table.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlpower import topology
from mlpower.analytics.check import check_run_dir
from mlpower.analytics.findings import CheckOptions
from mlpower.analytics.service import AnalyticsService
from mlpower.analytics.settings import AnalyticsSettings
from mlpower.bus import InMemoryBus
from mlpower.schema import Message, RunAnalyzed
from mlpower.settings import load_settings

from tests.figures.helpers import wait_for

from .trees import ModeTimes, TreeSpec, detail_log, summary_log

TRUE_W = 250.0
MIN_DURATION_S = 2.0  # the real runs are short on purpose; the 600 s limit has its own tests


@dataclass(frozen=True)
class RealRun:
    session: Path  # the tree `mlpower check` is given: the client's for a power-dev session, else the director's
    director: Path  # the director's own folder for the session (documents.jsonl, samples.parquet)
    options: CheckOptions  # what the analytics service judged the run with
    analyzed: RunAnalyzed | None = None  # what the analytics service published while watching the bus
    table: Path | None = None  # the analytics service's run table


class Analytics:
    """The analytics service on an in-memory bus, and the RunAnalyzed events it publishes."""

    def __init__(self, base: Path) -> None:
        self.bus = InMemoryBus()
        self.settings = load_settings(AnalyticsSettings, bus="memory", results_dir=base / "analytics",
                                      min_duration_s=MIN_DURATION_S)
        self.service = AnalyticsService(self.settings, self.bus)
        self.analyzed: queue.Queue[Message] = queue.Queue()
        self.bus.subscribe(topology.QueueSpec("", topology.EVENTS_EXCHANGE, ("run_analyzed.#",), exclusive=True),
                           lambda m, d: self.analyzed.put(m))
        self.service.start()

    def wait(self, run_id: str, timeout_s: float = 60.0) -> RunAnalyzed:
        while True:
            message = self.analyzed.get(timeout=timeout_s)  # raises queue.Empty when none comes
            if isinstance(message, RunAnalyzed) and message.run_id == run_id:
                return message

    def close(self) -> None:
        self.service.stop()
        self.bus.close()


def samples_recorded(session, at_least: int):  # type: ignore[no-untyped-def]
    """A wait_for condition: the session's stream has published at least this many samples."""
    return lambda: session.stream is not None and session.stream.samples >= at_least


@pytest.fixture(scope="session")
def real_scpi(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    """The agent's client against the director's power-dev server, the WT310E simulator measuring."""
    from mlpower.analyzer_sim.simulator import start_simulator
    from mlpower.director.director import Director
    from mlpower.director.powerdev_server import PowerDevServer
    from mlpower.director.settings import DirectorSettings

    base = tmp_path_factory.mktemp("real-scpi")
    analytics = Analytics(base)
    try:
        with start_simulator(port=0, load=f"constant:{TRUE_W}") as simulator:
            settings = load_settings(
                DirectorSettings, analyzer=f"TCPIP0::127.0.0.1::{simulator.port}::SOCKET", host="127.0.0.1",
                powerdev_port=0, http_port=0, results_dir=base / "director", analyzer_sleep_s=0.5,
                sample_interval_s=1.0, bus_mode=False, bus="memory")
            server = PowerDevServer(Director(settings, bus=analytics.bus), host="127.0.0.1",
                                    port=0).start()
            try:
                # The LoadGen result's validity and the ranging/testing lengths depend on how busy this
                # machine is (a full suite on 2 shared cores once stretched ranging to 43 s against 7 s of
                # testing, twice in a row); a run that misses them by chance is made again, up to twice.
                for attempt in range(3):
                    out = base / f"agent{attempt}"
                    done = subprocess.run(
                        [sys.executable, "-m", "mlpower.sut_agent", "--server", f"127.0.0.1:{server.port}",
                         "--workload", "builtin:offline", "--out", str(out), "--label", f"analytics{attempt}",
                         "--duration-s", "6"], capture_output=True, text=True, timeout=240)
                    assert done.returncode == 0, done.stderr[-3000:]
                    (session,) = [p for p in out.iterdir() if p.name != "loadgen_logs"]
                    analyzed = analytics.wait(session.name)
                    report = check_run_dir(session)
                    if all(report.finding(rule).status == "pass"
                           for rule in ("loadgen_result_valid", "ranging_testing_duration")):
                        break
            finally:
                server.stop()
    finally:
        analytics.close()
    sources = json.loads((session / "power" / "client.json").read_text())["sources"]
    server_sources = json.loads((session / "power" / "server.json").read_text())["sources"]
    return RealRun(session, base / "director" / session.name,
                   CheckOptions(sources_checksums=(sources, server_sources), min_duration_s=MIN_DURATION_S),
                   analyzed, analytics.settings.table_path)


@pytest.fixture(scope="session")
def real_bus(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    """The whole lab in one process on the in-memory bus: StartRun -> director (simulator) and agent
    (built-in LoadGen) -> run documents (ending with run.stop) -> analytics -> RunAnalyzed. The agent keeps
    its LoadGen logs in the run's folder (one results folder), as the demo and the lab do."""
    from mlpower.analyzer_sim.simulator import start_simulator
    from mlpower.director.bus_edge import BusEdge
    from mlpower.director.director import Director
    from mlpower.director.settings import DirectorSettings
    from mlpower.schema import StartRun
    from mlpower.sut_agent.bus_mode import AgentService
    from mlpower.sut_agent.settings import Settings as AgentSettings

    base = tmp_path_factory.mktemp("real-bus")
    analytics = Analytics(base)
    bus = analytics.bus
    try:
        with start_simulator(port=0, load=f"constant:{TRUE_W}") as simulator:
            director = Director(load_settings(
                DirectorSettings, analyzer=f"TCPIP0::127.0.0.1::{simulator.port}::SOCKET", host="127.0.0.1",
                powerdev_port=0, http_port=0, results_dir=base / "results", analyzer_sleep_s=0.3,
                sample_interval_s=1.0, bus="memory"), bus=bus)
            bus_mode = BusEdge(director, bus).start()
            agent = AgentService(load_settings(AgentSettings, results_dir=base / "results", duration_s=8.0),
                                 bus).start()
            try:
                bus.publish(StartRun(sut="sut", run_id="lab-run", scenario="Offline", workload="builtin:offline",
                                     sample_interval_s=1.0, settings={"duration_s": 8.0}),
                            topology.command_key("director", "sut", lab="lab"))
                analyzed = analytics.wait("lab-run", timeout_s=240)
            finally:
                agent.close()
                bus_mode.stop()
    finally:
        analytics.close()
    folder = base / "results" / "lab-run"
    return RealRun(folder, folder, CheckOptions(min_duration_s=MIN_DURATION_S), analyzed, analytics.settings.table_path)


@pytest.fixture(scope="session")
def real_direct(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    """The director's session driven directly (no client, no bus workload), the WT310E simulator over
    SCPI, the run stream on a bus that analytics watches."""
    from mlpower.analyzer_sim.simulator import start_simulator
    from mlpower.director.session import MeasurementSession, SessionConfig, SessionIdentity
    from mlpower.director.session_states import Done, StartPhase, StopPhase
    from mlpower.director.sources import open_source

    base = tmp_path_factory.mktemp("real-direct")
    analytics = Analytics(base)
    try:
        with start_simulator(port=0, load=f"constant:{TRUE_W}") as sim:
            source = open_source(f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", update_interval_s=0.25)
            session = MeasurementSession(SessionIdentity("direct-run"), [("analyzer1", source)],
                                         SessionConfig(base / "results", sample_interval_s=0.25, sleep_s=0.05,
                                                       page_interval_s=0.5),
                                         bus=analytics.bus)
            session.open()
            for mode, samples in (("ranging", 4), ("testing", 12)):
                before = session.stream.samples if session.stream is not None else 0
                session.handle(StartPhase(mode))
                wait_for(samples_recorded(session, before + samples), 30, f"{samples} {mode} samples")
                session.handle(StopPhase(mode))
            session.handle(Done())
            analyzed = analytics.wait(session.run_id)
    finally:
        analytics.close()
    return RealRun(session.dir, session.dir, CheckOptions(min_duration_s=MIN_DURATION_S), analyzed,
                   analytics.settings.table_path)


@pytest.fixture(scope="session")
def real_ptd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A director session measured through the PTDaemon emulator; the test adds LoadGen logs whose
    window lies inside each phase (the PTD path of the power-dev server is exercised by the director)."""
    from mlpower.analyzer_sim.simulator import start_ptd
    from mlpower.director.session import MeasurementSession, SessionConfig, SessionIdentity
    from mlpower.director.session_states import Done, StartPhase, StopPhase
    from mlpower.director.sources import open_source

    base = tmp_path_factory.mktemp("real-ptd")
    log_path, console_path = base / "ptd_data.log", base / "ptd_console.txt"
    with start_ptd(port=0, log_path=log_path, console_path=console_path, load=f"constant:{TRUE_W}") as ptd:
        # the director reads PTDaemon's data log and console as power-dev does for its own child
        source = open_source(f"ptd://127.0.0.1:{ptd.port}", data_log=log_path, console_log=console_path)
        session = MeasurementSession(SessionIdentity("ptd-run"), [("analyzer1", source)],
                                     SessionConfig(base / "results", sample_interval_s=1.0, sleep_s=0.05))
        session.open()
        for mode in ("ranging", "testing"):
            before = session.stream.samples if session.stream is not None else 0
            session.handle(StartPhase(mode))
            wait_for(samples_recorded(session, before + 3), 30, f"3 {mode} samples from PTDaemon")
            session.handle(StopPhase(mode))
        session.handle(Done())
    assert session.state.value == "done", session.status_reason
    server = json.loads((session.dir / "power" / "server.json").read_text())
    for mode, folder in (("ranging", "ranging"), ("testing", "run_1")):
        walls = [p[0] for p in server["phases"][mode]]
        times = ModeTimes(walls, walls[1] + 0.3, walls[2] - 0.3, [])
        (session.dir / folder / "mlperf_log_detail.txt").write_text(detail_log(TreeSpec(), times))
        (session.dir / folder / "mlperf_log_summary.txt").write_text(summary_log(TreeSpec()))
    return session.dir
