"""Bus mode on the real RabbitMQ: StartRun -> RunWorkloadPhase to the agent -> WorkloadPhase events
-> RunStop (the end-of-run fact), and the run's documents on the bus: every sample exactly once, in order. A run
that fails or is aborted sends StopWorkload; a silent agent fails the run after 3 heartbeats."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlpower import topology
from mlpower.director.bus_edge import events_queue as director_events_queue
from mlpower.director.service import DirectorService
from mlpower.schema import (
    AgentHeartbeat,
    PhaseMark,
    RunStart,
    RunStop,
    RunWorkloadPhase,
    SamplePage,
    StartRun,
    StopRun,
    StopWorkload,
    WorkloadPhase,
)
from mlpower.testing import Inbox, wait_for

from .conftest import fast_settings

pytestmark = pytest.mark.rabbitmq
HEARTBEAT_S = 0.4


class FakeAgent:
    """Answers RunWorkloadPhase like the SUT agent: started, power_begin, power_end, then finished/failed.

    Its "workload" lasts until the director has measured ``samples`` samples of the mode (or, with
    ``hold``, until the test releases it), so a phase always has samples without a timed wait."""

    def __init__(self, bus, director, lab: str, sut: str, outcome: str = "finished", samples: int = 3,  # type: ignore[no-untyped-def]
                 hold: bool = False) -> None:
        self.bus, self.director, self.lab, self.sut, self.outcome = bus, director, lab, sut, outcome
        self.samples = samples
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.asks: list[RunWorkloadPhase] = []
        self.stops: list[StopWorkload] = []
        spec = topology.QueueSpec("", topology.COMMANDS_EXCHANGE, (topology.command_key("agent", sut, lab=lab),),
                                  durable=False, exclusive=True)
        self.subscription = bus.subscribe(spec, self._on_command)

    def _event(self, ask: RunWorkloadPhase, state: str) -> None:
        event = WorkloadPhase(run_id=ask.run_id, sut=self.sut, mode=ask.mode, state=state, t_utc_s=time.time())  # type: ignore[arg-type]
        self.bus.publish(event, topology.event_key(event, lab=self.lab))

    def _beat(self, ask: RunWorkloadPhase, done: threading.Event) -> None:
        while not done.wait(HEARTBEAT_S / 2):
            beat = AgentHeartbeat(run_id=ask.run_id, sut=self.sut, mode=ask.mode, state="running", pid=1,
                                  t_utc_s=time.time())
            self.bus.publish(beat, topology.event_key(beat, lab=self.lab))

    def _on_command(self, message, delivery) -> None:  # type: ignore[no-untyped-def]
        if isinstance(message, StopWorkload):
            self.stops.append(message)
            return
        if not isinstance(message, RunWorkloadPhase):
            return
        self.asks.append(message)
        if self.outcome == "silent":
            return

        def work() -> None:
            done = threading.Event()
            threading.Thread(target=self._beat, args=(message, done), daemon=True).start()
            self._event(message, "started")
            self._event(message, "power_begin")
            session = self.director.active
            wait_for(lambda: session.ended or len(session.readings(message.mode)) >= self.samples, 30,
                     what=f"{self.samples} {message.mode} samples")
            self.release.wait(60)
            done.set()
            self._event(message, "power_end")
            self._event(message, self.outcome)

        threading.Thread(target=work, daemon=True).start()


@pytest.fixture
def lab(rabbit_bus, unique: str, tmp_path: Path, source_factory) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    lab_name, sut = f"lab{unique}", f"sut{unique}"
    settings = fast_settings(tmp_path, lab=lab_name, sut=sut, bus="rabbitmq", phase_timeout_s=60,
                             heartbeat_s=HEARTBEAT_S)
    documents = Inbox(rabbit_bus, topology.RUNS_EXCHANGE, (f"{lab_name}.{sut}.#",))
    stops = Inbox(rabbit_bus, topology.RUNS_EXCHANGE, (f"{lab_name}.{sut}.#",))  # for the run.stop documents
    service = DirectorService(settings, bus=rabbit_bus, source_factory=source_factory, serve_http=False,
                              serve_powerdev=False).start()
    events = director_events_queue(lab_name, sut).name
    yield {"service": service, "director": service.director, "bus": rabbit_bus, "lab": lab_name, "sut": sut,
           "documents": documents, "stops": stops, "results": tmp_path}
    service.stop()
    documents.close()
    stops.close()
    rabbit_bus.delete_queue(events)  # durable: it would outlive the test


def _completed(lab: dict) -> RunStop:
    return lab["stops"].next(RunStop)


def agent(lab: dict, **options: object) -> FakeAgent:
    return FakeAgent(lab["bus"], lab["director"], lab["lab"], lab["sut"], **options)  # type: ignore[arg-type]


def test_a_bus_run_carries_every_sample_exactly_once_in_order(lab: dict, unique: str) -> None:
    fake = agent(lab)
    run_id = f"bus-{unique}"
    lab["bus"].publish(StartRun(sut=lab["sut"], run_id=run_id, workload="resnet", sample_interval_s=0.1),
                       topology.command_key("director", lab["sut"], lab=lab["lab"]))
    done = _completed(lab)
    assert (done.run_id, done.status, done.output_dir) == (run_id, "success", str(lab["results"] / run_id))
    assert [(a.mode, a.workload.name if a.workload else None) for a in fake.asks] == [("ranging", "resnet"),
                                                                                       ("testing", "resnet")]
    docs = lab["documents"].until(RunStop)
    assert [d.seq for d in docs] == list(range(len(docs))), "every document once, in order"
    start = docs[0]
    assert isinstance(start, RunStart) and (start.run_id, start.lab, start.sut) == (run_id, lab["lab"], lab["sut"])
    pages = [d for d in docs if isinstance(d, SamplePage)]
    assert [p.page for p in pages] == list(range(len(pages)))
    times = [t for p in pages for t in p.t_utc_s]
    assert times == sorted(times) and len(set(times)) == len(times)
    stop = docs[-1]
    assert stop == done and stop.samples == len(times)
    assert pq.read_table(lab["results"] / run_id / "samples.parquet").num_rows == len(times)
    loadgen = [(d.name, d.mode) for d in docs if isinstance(d, PhaseMark) and d.source == "loadgen"]
    assert loadgen == [("power_begin", "ranging"), ("power_end", "ranging"),
                       ("power_begin", "testing"), ("power_end", "testing")]
    director_marks = [d.name for d in docs if isinstance(d, PhaseMark) and d.source == "director"]
    assert director_marks == ["ranging_begin", "ranging_end", "testing_begin", "testing_end"]
    for p in pages:  # samples of a mode lie inside that mode's director marks
        assert p.mode in ("ranging", "testing")


def test_a_failed_workload_fails_the_run(lab: dict, unique: str) -> None:
    fake = agent(lab, outcome="failed", samples=1)
    lab["bus"].publish(StartRun(sut=lab["sut"], run_id=f"fail-{unique}", sample_interval_s=0.1),
                       topology.command_key("director", lab["sut"], lab=lab["lab"]))
    done = _completed(lab)
    assert done.status == "failed" and "workload failed in ranging" in done.reason
    wait_for(lambda: fake.stops, 10, what="StopWorkload for the failed run")
    assert [(s.run_id, s.sut) for s in fake.stops] == [(f"fail-{unique}", lab["sut"])]
    assert "workload failed in ranging" in fake.stops[0].reason


def test_a_silent_agent_fails_the_run_after_three_missed_heartbeats(lab: dict, unique: str) -> None:
    fake = agent(lab, outcome="silent")
    lab["bus"].publish(StartRun(sut=lab["sut"], run_id=f"quiet-{unique}", sample_interval_s=0.1),
                       topology.command_key("director", lab["sut"], lab=lab["lab"]))
    wait_for(lambda: fake.asks, 10, what="the ranging ask")
    asked = time.monotonic()
    done = _completed(lab)
    waited = time.monotonic() - asked
    assert done.status == "failed", done
    assert done.reason == (f"SUT agent {lab['sut']!r} missed 3 heartbeats (no sign of life for "
                           f"{3 * HEARTBEAT_S:g} s) during ranging")
    assert 3 * HEARTBEAT_S - 0.2 < waited < 3 * HEARTBEAT_S + 2.0, waited
    wait_for(lambda: fake.stops, 10, what="StopWorkload for the run")
    assert fake.stops[0].run_id == f"quiet-{unique}"


def test_stop_run_aborts_and_a_second_start_is_refused(lab: dict, unique: str) -> None:
    fake = agent(lab, hold=True)
    key = topology.command_key("director", lab["sut"], lab=lab["lab"])
    lab["bus"].publish(StartRun(sut=lab["sut"], run_id=f"long-{unique}", sample_interval_s=0.1), key)
    wait_for(lambda: fake.asks, what="the first run to ask the agent for ranging")
    lab["bus"].publish(StartRun(sut=lab["sut"], run_id=f"second-{unique}", sample_interval_s=0.1), key)
    refused = _completed(lab)
    assert refused.run_id == f"second-{unique}" and refused.status == "failed" and "refused" in refused.reason
    assert refused.seq == 0 and not refused.output_dir  # the end of a run that never started
    lab["bus"].publish(StopRun(run_id=f"long-{unique}", reason="operator"), key)
    done = _completed(lab)
    assert (done.run_id, done.status, done.reason) == (f"long-{unique}", "aborted", "operator")
    wait_for(lambda: fake.stops, 10, what="StopWorkload for the aborted run")
    assert fake.stops[0].run_id == f"long-{unique}" and "operator" in fake.stops[0].reason
    fake.release.set()


def test_an_http_run_with_a_workload_goes_through_the_agent(lab: dict, unique: str) -> None:
    from fastapi.testclient import TestClient

    fake = agent(lab)
    http = TestClient(lab["service"].app)
    accepted = http.post("/runs", json={"run_id": f"http-{unique}", "workload": "resnet", "benchmark": "resnet50"})
    assert accepted.status_code == 202 and accepted.json()["via"] == "agent"
    done = _completed(lab)
    assert (done.run_id, done.status) == (f"http-{unique}", "success")
    assert [a.mode for a in fake.asks] == ["ranging", "testing"]
    # HTTP says "running" until the end is complete: files written, then the end published, then ended
    wait_for(lambda: http.get(f"/runs/http-{unique}").json()["status"] != "running", 10, what="the run to end")
    assert http.get(f"/runs/http-{unique}").json()["status"] == "success"


def test_a_run_stopped_over_http_tells_the_agent_to_stop_its_workload(lab: dict, unique: str) -> None:
    from fastapi.testclient import TestClient

    fake = agent(lab, hold=True)
    http = TestClient(lab["service"].app)
    accepted = http.post("/runs", json={"run_id": f"halt-{unique}", "workload": "resnet"})
    assert accepted.status_code == 202
    wait_for(lambda: fake.asks, what="the ranging ask")
    assert http.post(f"/runs/halt-{unique}/stop").json() == {"run_id": f"halt-{unique}", "stopped": True}
    done = _completed(lab)
    assert (done.run_id, done.status) == (f"halt-{unique}", "aborted")
    wait_for(lambda: fake.stops, 10, what="StopWorkload for the stopped run")
    assert [(s.run_id, s.reason) for s in fake.stops] == [(f"halt-{unique}", "run aborted: stopped over HTTP")]
    fake.release.set()


@pytest.mark.parametrize("ask, reason", [
    ({"workload": "builtin:bogus"}, "unknown built-in workload 'builtin:bogus'"),
    ({"workload": "resnet", "scenario": "Nonsense"}, "unknown scenario 'Nonsense'"),
])
def test_what_cannot_be_measured_is_refused_on_arrival_with_the_reason(lab: dict, unique: str, ask: dict,
                                                                       reason: str) -> None:
    fake = agent(lab)
    run_id = f"refused-{unique}"
    lab["bus"].publish(StartRun(sut=lab["sut"], run_id=run_id, sample_interval_s=0.1, **ask),
                       topology.command_key("director", lab["sut"], lab=lab["lab"]))
    refused = _completed(lab)
    assert (refused.run_id, refused.status, refused.seq) == (run_id, "failed", 0)
    assert refused.reason.startswith("refused: ") and reason in refused.reason, refused.reason
    assert fake.asks == [] and not (lab["results"] / run_id).exists()  # no phase, no folder
