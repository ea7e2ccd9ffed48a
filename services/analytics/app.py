"""The analytics HTTP API: runs, summaries and findings; ``/healthz`` and ``/metrics``.

Read-only (GET only, nothing here changes state or starts work), so no bearer token is asked for.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from mlpower.http_limits import BodyLimit
from mlpower.http_refusals import refusals
from mlpower.readiness import add_readyz, subscriptions_connected

from .service import AnalyticsService


def create_app(service: AnalyticsService) -> FastAPI:
    app = FastAPI(title="mlpower analytics", version="1", responses=refusals(413, 422))
    app.add_middleware(BodyLimit)

    def analyzed(run_id: str) -> Any:
        message = service.store.get(run_id)
        if message is None:
            raise HTTPException(status_code=404, detail=f"no analysed run {run_id!r}")
        return message

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "runs": len(service.store), "table": str(service.store.path)}

    # ready while it consumes run documents and events (its own shards' queues at least)
    add_readyz(app, {"broker": subscriptions_connected(lambda: service.subscriptions)})

    @app.get("/metrics")
    def metrics() -> Response:
        service.count_dead_letters()
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/runs")
    def runs() -> list[dict[str, Any]]:
        return service.store.rows()

    @app.get("/runs/{run_id}", responses=refusals(404))
    def run(run_id: str) -> dict[str, Any]:
        return analyzed(run_id).model_dump(mode="json")

    @app.get("/runs/{run_id}/summary", responses=refusals(404))
    def summary(run_id: str) -> dict[str, Any]:
        return analyzed(run_id).summary.model_dump(mode="json")

    @app.get("/runs/{run_id}/findings", responses=refusals(404))
    def findings(run_id: str) -> list[dict[str, Any]]:
        return [f.model_dump(mode="json") for f in analyzed(run_id).findings]

    @app.get("/runs/{run_id}/live", responses=refusals(404))
    def live(run_id: str) -> list[dict[str, Any]]:
        found = service.live_findings(run_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no run {run_id!r} in progress or recently seen")
        return [f.model_dump(mode="json") for f in found]

    return app
