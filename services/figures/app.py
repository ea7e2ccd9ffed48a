"""The figures HTTP API (FastAPI): list figures, fetch one as PNG/SVG/JSON, rebuild, job status.

``POST /rebuild`` needs ``Authorization: Bearer <MLPOWER_API_TOKEN>`` when a token is set.
"""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.responses import FileResponse
from mlpower.figures import build, catalogue
from mlpower.figures.errors import FiguresError
from mlpower.figures.service import FiguresService
from mlpower.http_auth import bearer_guard
from mlpower.http_limits import BodyLimit
from mlpower.http_refusals import refusals
from pydantic import BaseModel, ConfigDict

MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml", "json": "application/json"}
ModeName = Literal["paper", "corrected"]


class RebuildRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    figures: list[str] = []
    mode: ModeName = "paper"


def create_app(service: FiguresService, *, api_token: str = "") -> FastAPI:
    app = FastAPI(title="mlpower figures", version="1", responses=refusals(413, 422))
    app.add_middleware(BodyLimit)

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        return {"status": "ok", "worker_alive": service._thread.is_alive()}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/figures")
    def list_figures(mode: ModeName = "paper") -> list[dict[str, object]]:
        folder = service.mode_dir(mode)
        manifest = build.read_manifest(folder)
        return [
            {
                "name": e.name,
                "title": e.title,
                "upstream_script": e.upstream_script,
                "mode": mode,
                "built": all((folder / f"{e.name}{s}").is_file() for s in build.OUTPUT_SUFFIXES),
                "inputs_digest": manifest.get(e.name, {}).get("digest"),
                "formats": {fmt: f"/figures/{e.name}.{fmt}?mode={mode}" for fmt in MEDIA_TYPES},
            }
            for e in catalogue.CATALOGUE
        ]

    @app.get("/figures/{name}.{fmt}", responses=refusals(404))
    def get_figure(name: str, fmt: str, mode: ModeName = "paper") -> FileResponse:
        if fmt not in MEDIA_TYPES:
            raise HTTPException(status_code=404, detail=f"unknown format {fmt!r}; use png, svg or json")
        try:
            catalogue.entry(name)
        except FiguresError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        path = service.mode_dir(mode) / f"{name}.{fmt}"
        if not path.is_file():
            raise HTTPException(status_code=404, detail=f"{name} is not built in {mode} mode yet; POST /rebuild")
        return FileResponse(path, media_type=MEDIA_TYPES[fmt])

    @app.post("/rebuild", status_code=202, dependencies=[Depends(bearer_guard(api_token))], responses=refusals(401))
    def rebuild(request: RebuildRequest | None = None) -> dict[str, object]:
        request = request or RebuildRequest()
        try:
            job = service.submit(request.figures, request.mode, trigger="api")
        except FiguresError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return {"job_id": job.id, "state": job.state, "status_url": f"/jobs/{job.id}"}

    @app.get("/jobs/{job_id}", responses=refusals(404))
    def job_status(job_id: str) -> dict[str, object]:
        job = service.jobs.get(job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=f"no job {job_id!r}")
        return job.to_json()

    return app
