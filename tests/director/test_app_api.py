"""The HTTP control API: auth, runs, status, artifacts (confined to the run's folder), health, OpenAPI."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlpower.director.director import Director
from mlpower.director.errors import SourceUnavailable
from mlpower.director.http_api import create_app
from mlpower.testing import wait_for

from .conftest import fast_settings
from .fakes import FakeSource

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def director(tmp_path: Path, source_factory) -> Director:  # type: ignore[no-untyped-def]
    return Director(fast_settings(tmp_path), source_factory=source_factory)


@pytest.fixture
def client(director: Director) -> TestClient:
    return TestClient(create_app(director, api_token=TOKEN))


def _wait_ended(client: TestClient, run_id: str, timeout_s: float = 10) -> dict:
    def ended() -> dict | None:
        status = client.get(f"/runs/{run_id}").json()
        return status if status["state"] == "ended" else None

    return wait_for(ended, timeout_s, what=f"run {run_id} to end")


def test_health_metrics_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/metrics").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/runs", "/runs/{run_id}", "/runs/{run_id}/stop", "/runs/{run_id}/files/{path}", "/status"} <= set(paths)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_control_needs_the_bearer_token(client: TestClient, headers: dict) -> None:
    assert client.post("/runs", json={"phase_s": 0.1}, headers=headers).status_code == 401
    assert client.post("/runs/x/stop", headers=headers).status_code == 401


def test_a_timed_run_from_start_to_artifacts(client: TestClient) -> None:
    accepted = client.post("/runs", json={"run_id": "http-run", "phase_s": 0.3, "benchmark": "resnet"}, headers=AUTH)
    assert accepted.status_code == 202 and accepted.json()["via"] == "timed"
    assert client.post("/runs", json={"phase_s": 0.3}, headers=AUTH).status_code == 409  # one at a time
    assert client.get("/status").json()["busy"] is True
    status = _wait_ended(client, "http-run")
    assert status["status"] == "success"
    assert {"power/server.json", "run_1/spl.txt", "samples.parquet", "documents.jsonl"} <= set(status["files"])
    assert [r["run_id"] for r in client.get("/runs").json()] == ["http-run"]
    spl = client.get("/runs/http-run/files/run_1/spl.txt")
    assert spl.status_code == 200 and spl.text.startswith("Time,")
    for bad in ("..%2F..%2Fetc%2Fpasswd", "power/..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd"):
        assert client.get(f"/runs/http-run/files/{bad}").status_code in (403, 404)
    assert client.get("/runs/http-run/files/nope.txt").status_code == 404
    assert client.get("/runs/no-such-run").status_code == 404
    assert client.get("/runs/..%2F..%2Fetc").status_code == 404


def test_stop_aborts_a_run_and_bad_requests_are_refused(client: TestClient) -> None:
    assert client.post("/runs", json={"run_id": "long", "phase_s": 30}, headers=AUTH).status_code == 202
    wait_for(lambda: client.get("/runs/long").json()["state"] == "ranging", what="ranging to start")
    assert client.post("/runs/long/stop", headers=AUTH).json() == {"run_id": "long", "stopped": True}
    status = _wait_ended(client, "long", timeout_s=3)
    assert status["status"] == "aborted" and status["reason"] == "stopped over HTTP"
    assert client.post("/runs", json={"sample_interval_s": 0.01}, headers=AUTH).status_code == 422
    assert client.post("/runs", json={"run_id": "../x"}, headers=AUTH).status_code == 422
    assert client.post("/runs", json={"modes": ["testing"]}, headers=AUTH).status_code == 422
    assert client.post("/runs", json={"nonsense": 1}, headers=AUTH).status_code == 422
    # labels that go into server.json and the run-info metric: bounded, one line
    for label in ({"benchmark": "b" * 129}, {"scenario": "s" * 65}, {"benchmark": "x\ny"}, {"scenario": "\x1b[2J"}):
        assert client.post("/runs", json=label, headers=AUTH).status_code == 422, label
    assert not client.get("/status").json()["busy"]


def test_without_a_token_control_is_open(director: Director) -> None:
    open_client = TestClient(create_app(director, api_token=""))
    assert open_client.post("/runs", json={"run_id": "open", "phase_s": 0.1}).status_code == 202
    assert _wait_ended(open_client, "open")["status"] == "success"


def test_an_analyzer_that_cannot_be_opened_is_503_and_names_it(tmp_path: Path) -> None:
    def unreachable(resource: str, interval_s: float) -> FakeSource:
        raise SourceUnavailable("wt310e", f"cannot connect to {resource}: connection refused")

    director = Director(fast_settings(tmp_path), source_factory=unreachable)
    answer = TestClient(create_app(director, api_token=TOKEN)).post("/runs", json={"phase_s": 0.1}, headers=AUTH)
    assert answer.status_code == 503 and "cannot connect to fake://1" in answer.json()["detail"]
    assert not director.busy
