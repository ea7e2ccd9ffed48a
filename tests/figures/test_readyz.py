"""figures is ready while its build worker runs: a dead worker answers 503 on ``/readyz`` even
though ``/healthz`` (the process serves) still answers 200."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from mlpower.figures.app import create_app
from mlpower.figures.service import FiguresService


def test_a_dead_worker_is_not_ready(tmp_path: Path) -> None:
    service = FiguresService(tmp_path / "no-data", tmp_path / "figures", workers=1)
    client = TestClient(create_app(service))
    try:
        answer = client.get("/readyz")
        assert answer.status_code == 200 and answer.json()["checks"] == {"worker": True}
        service.close()  # the worker thread ends
        assert not service.worker.is_alive()
        answer = client.get("/readyz")
        assert answer.status_code == 503 and answer.json()["checks"] == {"worker": False}
        assert client.get("/healthz").status_code == 200
    finally:
        service.close()
