"""Refuse early, say why: what cannot be measured is refused when the request arrives (HTTP 422,
a power-dev ``Error: <reason>``), an analyzer that cannot be opened makes /healthz say
"degraded" and why, and a failed ``new`` leaves no folder behind."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlpower.director.director import Director
from mlpower.director.http_api import create_app
from mlpower.director.powerdev_server import PowerDevServer
from mlpower.director.run_plan import AgentWorkload, PlanError, RunPlan, TimedWorkload
from mlpower.schema import BUILTIN_WORKLOADS, WorkloadRequest
from mlpower.sut_agent.workloads import BUILTIN_WORKLOADS as AGENT_BUILTINS

from .conftest import fast_settings
from .powerdev_client import ProtocolClient

CLIENT, SERVER = "mlcommons/power client v3", "mlcommons/power server v3"


def closed_port_resource() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    return f"TCPIP0::127.0.0.1::{port}::SOCKET"


def test_the_director_knows_the_agents_built_in_workloads() -> None:
    assert set(BUILTIN_WORKLOADS) == set(AGENT_BUILTINS)


@pytest.mark.parametrize("plan, reason", [
    (lambda: RunPlan(TimedWorkload(1.0), scenario="Nonsense"), "unknown scenario 'Nonsense': one of Offline"),
    (lambda: RunPlan(AgentWorkload(WorkloadRequest(name="builtin:bogus"))),
     "unknown built-in workload 'builtin:bogus': one of builtin:offline"),
])
def test_a_plan_that_cannot_be_measured_is_refused_with_the_reason(plan, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PlanError, match=reason):
        plan()


def test_known_names_pass() -> None:
    RunPlan(AgentWorkload(WorkloadRequest(name="builtin:Offline:cuda")), scenario="Server")
    RunPlan(AgentWorkload(WorkloadRequest(name="my-declared-workload")))  # the agent's own list decides


def test_http_refuses_an_unknown_scenario_with_422_before_any_session(tmp_path: Path, source_factory) -> None:  # type: ignore[no-untyped-def]
    director = Director(fast_settings(tmp_path), source_factory=source_factory)
    client = TestClient(create_app(director))
    answer = client.post("/runs", json={"scenario": "Nonsense", "phase_s": 1})
    assert answer.status_code == 422 and "unknown scenario 'Nonsense'" in answer.json()["detail"], answer.text
    assert not director.busy and director.last is None and list(tmp_path.iterdir()) == []


def test_healthz_is_degraded_with_the_reason_while_the_analyzer_cannot_be_opened(tmp_path: Path) -> None:
    for resource in ("bogus", closed_port_resource()):
        director = Director(fast_settings(tmp_path, analyzer=resource))
        client = TestClient(create_app(director))
        assert client.get("/healthz").json() == {"status": "ok"}  # nothing known before the start-up probe
        assert director.probe_analyzers() == {"analyzer1": False}
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "degraded", health.text
        assert health.json()["analyzers"]["analyzer1"], "the reason is given"


def test_healthz_is_ok_with_an_analyzer_that_opens(tmp_path: Path, source_factory) -> None:  # type: ignore[no-untyped-def]
    director = Director(fast_settings(tmp_path), source_factory=source_factory)
    assert director.probe_analyzers() == {"analyzer1": True}
    assert TestClient(create_app(director)).get("/healthz").json() == {"status": "ok"}


@pytest.fixture
def unusable(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[ProtocolClient, Path]]:
    results = tmp_path / "results"
    director = Director(fast_settings(results, analyzer=request.param))
    server = PowerDevServer(director, host="127.0.0.1", port=0).start()
    client = ProtocolClient("127.0.0.1", server.port)
    assert client.command(CLIENT) == SERVER
    yield client, results
    client.close()
    server.stop()


@pytest.mark.parametrize("unusable", ["bogus", closed_port_resource()], indirect=True, ids=["bogus", "closed-port"])
def test_a_failed_new_says_why_and_leaves_nothing_behind(unusable: tuple[ProtocolClient, Path]) -> None:
    client, results = unusable
    reply = client.command(f"new,lbl,{uuid.uuid4()}")
    assert reply is not None and reply.startswith("Error: ") and reply != "Error: exception", reply
    assert "\n" not in reply and len(reply) < 400
    assert not results.exists() or not any(results.rglob("power")), "no empty power/ folder"
    assert client.command("time") is not None  # the connection is still served
