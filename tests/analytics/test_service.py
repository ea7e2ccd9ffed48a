"""The service on the in-memory bus: live findings while the run goes, RunAnalyzed at its stop,
the Parquet table and the HTTP API."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from mlpower import topology
from mlpower.analytics.app import create_app
from mlpower.analytics.rules import RULES
from mlpower.analytics.service import AnalyticsService
from mlpower.analytics.settings import AnalyticsSettings
from mlpower.analytics.store import RunStore
from mlpower.bus import InMemoryBus
from mlpower.schema import LiveFinding, Message, RunAnalyzed, RunStop, SamplePage
from mlpower.settings import load_settings

from tests.figures.helpers import wait_for as wait_for_condition

from .streams import Synth
from .test_energy import constant


def collect(bus: InMemoryBus, pattern: str) -> queue.Queue[Message]:
    got: queue.Queue[Message] = queue.Queue()
    bus.subscribe(topology.QueueSpec("", topology.EVENTS_EXCHANGE, (pattern,), exclusive=True),
                  lambda m, d: got.put(m))
    return got


def wait_for(got: queue.Queue[Message], kind: type, timeout_s: float = 10.0) -> Message:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            message = got.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(message, kind):
            return message
    raise AssertionError(f"no {kind.__name__} within {timeout_s} s")


@pytest.fixture
def service(tmp_path: Path):  # type: ignore[no-untyped-def]
    bus = InMemoryBus()
    settings = load_settings(AnalyticsSettings, bus="memory", results_dir=tmp_path, min_duration_s=600)
    svc = AnalyticsService(settings, bus)
    svc.start()
    yield svc
    svc.stop()
    bus.close()


def test_documents_to_run_analyzed_table_and_api(service: AnalyticsService) -> None:
    bus = service.bus
    events = collect(bus, "#")  # type: ignore[arg-type]
    logs = service.settings.results_dir / "agent" / "run_1"
    logs.mkdir(parents=True)
    (logs / "mlperf_log_detail.txt").write_text(
        ':::MLLOG {"key": "effective_scenario", "value": "Offline"}\n'
        ':::MLLOG {"key": "result_samples_per_second", "value": 1000.0}\n')
    docs = Synth(constant, seed=5, power_end_detail=str(logs / "mlperf_log_detail.txt")).build("run-a")
    # one bad page: uncertainty far above 1 % in the testing run
    bad = next(d for d in docs if isinstance(d, SamplePage) and d.page == 3)
    docs[docs.index(bad)] = bad.model_copy(update={"uncertainty_w": [30.0] * len(bad)})
    key = topology.run_key("lab", "sut", "sim", "run-a")
    for d in docs[:-1]:
        bus.publish(d, key)
    live = wait_for(events, LiveFinding)
    assert live.finding.rule == "uncertainty" and live.run_id == "run-a"  # type: ignore[attr-defined]
    for d in docs[5:10]:
        bus.publish(d, key)  # redeliveries change nothing
    bus.publish(docs[-1], key)
    analyzed = wait_for(events, RunAnalyzed)
    assert isinstance(analyzed, RunAnalyzed) and analyzed.verdict == "fail"
    assert analyzed.summary.avg_power_w == pytest.approx(250.0, abs=2.0)
    assert analyzed.summary.performance == 1000.0  # from the LoadGen log the power_end mark names
    assert analyzed.summary.efficiency == pytest.approx(1000.0 / analyzed.summary.avg_power_w)
    # the verdict is the rule table's over the whole run: the live finding's rule fails there too
    assert [f.rule for f in analyzed.findings] == [r.id for r in RULES]
    status = {f.rule: f.status for f in analyzed.findings}
    assert status["uncertainty"] == "fail" and status["overrange"] == "pass" and status["samples_in_window"] == "pass"
    assert status["min_duration"] == "pass" and status["coverage"] == "pass"
    assert analyzed.summary.coverage_ratio == pytest.approx(1.0)
    # documents alone: no power-dev conversation on record and no workload named -> a direct run
    assert "client.json" not in " ".join(f.message for f in analyzed.findings if f.status == "fail")
    # the tidy table on disk
    frame = pl.read_parquet(service.settings.table_path)
    assert frame.get_column("run_id").to_list() == ["run-a"] and frame.get_column("verdict")[0] == "fail"
    assert RunStore(service.settings.table_path).get("run-a") == analyzed  # survives a restart
    with TestClient(create_app(service)) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.get("/runs").json()[0]["avg_power_w"] == pytest.approx(analyzed.summary.avg_power_w)
        assert client.get("/runs/run-a/summary").json()["run_id"] == "run-a"
        assert client.get("/runs/run-a").json()["verdict"] == analyzed.verdict
        assert any(f["rule"] == "uncertainty" and f["status"] == "fail"
                   for f in client.get("/runs/run-a/findings").json())
        assert client.get("/runs/nope").status_code == 404
        assert any(f["rule"] == "uncertainty" for f in client.get("/runs/run-a/live").json())
        metrics = client.get("/metrics").text
        assert 'mlpower_live_findings_total{rule="uncertainty",severity="error",sut="sut"} 1.0' in metrics
        # the rules that found nothing read 0 for this SUT (alert expressions get a value, not "no data")
        assert 'mlpower_live_findings_total{rule="overrange",severity="error",sut="sut"} 0.0' in metrics
        assert 'mlpower_live_findings_total{rule="coverage",severity="error",sut="sut"} 0.0' in metrics
        assert 'mlpower_analytics_runs_analyzed_total{verdict="fail"} 1.0' in metrics


def test_a_run_stop_naming_a_tree_is_checked(service: AnalyticsService, ptd_tree: Path) -> None:
    """Only the run.stop arrives (analytics joined after the run's other documents): the tree it
    names is the run."""
    events = collect(service.bus, "run_analyzed.#")  # type: ignore[arg-type]
    service.bus.publish(RunStop(run_id="tree-run", seq=7, status="success", output_dir=str(ptd_tree),
                                t_utc_s=time.time()),
                        topology.run_key("lab", "sut", "analyzer1", "tree-run"))
    analyzed = wait_for(events, RunAnalyzed)
    assert isinstance(analyzed, RunAnalyzed) and analyzed.run_id == "tree-run"
    rules = {f.rule: f.status for f in analyzed.findings}
    assert rules["ptd_messages"] == "pass" and rules["results_checksum"] == "pass"
    assert rules["client_sources_checksum"] == "not_applicable"
    assert analyzed.verdict == "pass" and analyzed.summary.avg_power_w == pytest.approx(250.0, abs=1.0)
    assert analyzed.summary.efficiency_unit == "samples/J"


def test_agent_clock_offset_event_becomes_a_live_finding(service: AnalyticsService) -> None:
    from mlpower.schema import WorkloadPhase

    events = collect(service.bus, "live_finding.#")  # type: ignore[arg-type]
    phase = WorkloadPhase(run_id="run-c", sut="sut", mode="testing", state="started", t_utc_s=time.time(),
                          detail="workload builtin:offline; clock offset to director +512.0 ms (round trip 1.0 ms)")
    service.bus.publish(phase, topology.event_key(phase, lab="lab"))
    live = wait_for(events, LiveFinding)
    assert live.finding.rule == "live_clock_offset" and live.finding.evidence["clock_offset_s"] == 0.512  # type: ignore[attr-defined]


def test_analytics_command_serves_until_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLPOWER_BUS": "memory", "MLPOWER_ANALYTICS_HOST": "127.0.0.1",
           "MLPOWER_ANALYTICS_PORT": str(port), "MLPOWER_RESULTS_DIR": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "mlpower", "analytics"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def healthy() -> httpx.Response | None:
            assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except httpx.HTTPError:
                return None

        health = wait_for_condition(healthy, 30, "the analytics API")
        assert health.json()["status"] == "ok"
        assert "mlpower_analytics_documents_total" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
