"""The HTTP API with FastAPI's test client and over a real uvicorn server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from mlpower.figures.app import create_app
from mlpower.figures.catalogue import NAMES

from .helpers import service_over_built, wait_for


@pytest.fixture
def service(built, data_dir: Path, tmp_path: Path):
    service = service_over_built(built, data_dir, tmp_path)
    yield service
    service.close()


def _finished(client, job_id: str) -> dict:
    return wait_for(
        lambda: (lambda s: s if s["state"] in ("done", "failed") else None)(client.get(f"/jobs/{job_id}").json()),
        what=f"job {job_id}",
    )


def test_list_get_and_an_unchanged_rebuild(service) -> None:
    client = TestClient(create_app(service))
    listing = client.get("/figures").json()
    assert [f["name"] for f in listing] == list(NAMES) and all(f["built"] for f in listing)
    png = client.get("/figures/fig5a.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert client.get("/figures/fig2.svg").headers["content-type"].startswith("image/svg+xml")
    assert client.get("/figures/fig2.json").json()["key_values"]["Datacenter_max_W"] == 6280.2
    assert client.get("/figures/fig3.png").status_code == 404
    assert client.get("/figures/fig2.pdf").status_code == 404
    assert client.get("/figures/fig2.png?mode=corrected").status_code == 404  # not built in that mode yet

    accepted = client.post("/rebuild", json={})
    assert accepted.status_code == 202
    status = _finished(client, accepted.json()["job_id"])
    assert status["state"] == "done" and status["rendered"] == [] and sorted(status["unchanged"]) == sorted(NAMES)

    named = client.post("/rebuild", json={"figures": ["fig9"], "mode": "corrected"}).json()
    status = _finished(client, named["job_id"])
    assert status["rendered"] == ["fig9"], status
    assert client.get("/figures/fig9.json?mode=corrected").json()["mode"] == "corrected"
    assert client.post("/rebuild", json={"figures": ["fig3"]}).status_code == 422
    assert client.post("/rebuild", json={"mode": "fancy"}).status_code == 422
    assert client.get("/jobs/nope").status_code == 404


def test_health_and_metrics(service) -> None:
    client = TestClient(create_app(service))
    assert client.get("/healthz").json()["status"] == "ok"
    job = client.post("/rebuild", json={"figures": ["fig2"]}).json()
    _finished(client, job["job_id"])
    text = client.get("/metrics").text
    assert 'mlpower_figures_rebuilds_total{outcome="done",trigger="api"} 1.0' in text
    assert 'mlpower_figures_unchanged_total{mode="paper"} 1.0' in text


def test_rebuild_needs_the_token_when_one_is_set(service) -> None:
    client = TestClient(create_app(service, api_token="s3cret"))
    assert client.post("/rebuild", json={}).status_code == 401
    assert client.post("/rebuild", json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/rebuild", json={}, headers={"Authorization": "Bearer s3cret"}).status_code == 202
    assert client.get("/figures").status_code == 200  # reading needs no token


@pytest.fixture
def server(service) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(service, api_token="t0ken"), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    wait_for(lambda: instance.started, 20, "uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


def test_over_a_real_uvicorn_server(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        assert client.post("/rebuild", json={}).status_code == 401
        accepted = client.post(
            "/rebuild", json={"figures": ["fig8", "fig10"]}, headers={"Authorization": "Bearer t0ken"}
        )
        assert accepted.status_code == 202
        status = _finished(client, accepted.json()["job_id"])
        assert status["state"] == "done" and status["rendered"] == [] and status["unchanged"] == ["fig8", "fig10"]
        assert client.get("/figures/fig8.png").content[:4] == b"\x89PNG"
