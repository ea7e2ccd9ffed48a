"""The SUT agent's HTTP app (FastAPI): ``/healthz``, ``/metrics`` and ``/status``.

Read-only: nothing here starts or changes work (phases come over the bus or the power-dev
protocol), so no bearer token is asked for. ``/status`` names the workloads bus mode offers, with
their parameters, never their commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Response
from mlpower.http_limits import BodyLimit
from mlpower.readiness import Check, add_readyz

from .metrics import CONTENT_TYPE, AgentMetrics
from .registry import Registry, describe


def create_app(metrics: AgentMetrics, *, mode: str = "bus", registry: Registry | None = None,
               checks: Mapping[str, Check] | None = None) -> FastAPI:
    app = FastAPI(title="mlpower SUT agent", version="1", description=__doc__)
    app.add_middleware(BodyLimit)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "sut": metrics.sut, "mode": mode}

    add_readyz(app, checks or {})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/status")
    def status() -> dict[str, Any]:
        workloads = {"workloads": describe(registry)} if registry is not None else {}
        return {"mode": mode, **metrics.status(), **workloads}

    return app
