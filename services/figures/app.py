"""The figures HTTP API (FastAPI): list figures, fetch one as PNG/SVG/JSON, rebuild, job status,
and the figures of each analyzed run beside them.

``POST /rebuild`` and ``POST /runs/{run_id}/figures`` need ``Authorization: Bearer
<MLPOWER_API_TOKEN>`` when a token is set. Requests name figures and runs, never paths: a run id
is a plain name (``runpaths.RUN_ID``) that only ever resolves inside the run figures folder
(reading) or the results folder (rendering).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from mlpower.figures import build, catalogue
from mlpower.figures.errors import FiguresError
from mlpower.figures.runpaths import RUN_FIGURE_KINDS, RUN_ID, run_figure_name
from mlpower.figures.service import FiguresService
from mlpower.http_auth import bearer_guard
from mlpower.http_limits import BodyLimit
from mlpower.http_refusals import refusals
from mlpower.readiness import add_readyz, subscriptions_connected, thread_alive
from pydantic import BaseModel, ConfigDict

MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml", "json": "application/json"}
ModeName = Literal["paper", "corrected"]
RunId = Annotated[str, PathParam(pattern=f"^{RUN_ID.pattern}$", description="a run id: letters, digits, _ and -")]


class RebuildRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    figures: list[str] = []
    mode: ModeName = "paper"


def create_app(service: FiguresService, *, api_token: str = "") -> FastAPI:
    app = FastAPI(title="mlpower figures", version="1", responses=refusals(413, 422))
    app.add_middleware(BodyLimit)

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        return {"status": "ok", "worker_alive": service.worker.is_alive()}

    # ready while its build worker runs and, when it listens on the bus, while it consumes
    checks = {"worker": thread_alive(lambda: service.worker)}
    if service.bus is not None:
        checks["broker"] = subscriptions_connected(lambda: service.subscriptions)
    add_readyz(app, checks)

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

    def run_folder_or_404(run_id: str) -> Path:
        try:
            return service.run_figures_dir(run_id)
        except FiguresError:  # e.g. a folder that is a symlink to somewhere else
            raise HTTPException(status_code=404, detail=f"no figures of run {run_id}") from None

    def run_figure_files(run_id: str) -> dict[str, dict[str, str]]:
        folder = run_folder_or_404(run_id)
        found: dict[str, dict[str, str]] = {}
        for kind in RUN_FIGURE_KINDS:
            for fmt in MEDIA_TYPES:
                if (folder / run_figure_name(run_id, kind, fmt)).is_file():
                    found.setdefault(kind, {})[fmt] = f"/runs/{run_id}/figures/{kind}.{fmt}"
        return found

    @app.get("/runs")
    def list_runs() -> list[dict[str, object]]:
        """The runs whose figures have been rendered, with where to fetch each."""
        root = service.runs_dir()
        names = sorted(p.name for p in root.iterdir() if RUN_ID.fullmatch(p.name)) if root.is_dir() else []
        runs = []
        for run_id in names:
            try:
                files = run_figure_files(run_id)
            except HTTPException:
                continue
            if files:
                runs.append({"run_id": run_id, "figures": files})
        return runs

    @app.get("/runs/{run_id}/figures", responses=refusals(404))
    def list_run_figures(run_id: RunId) -> dict[str, object]:
        files = run_figure_files(run_id)
        if not files:
            raise HTTPException(status_code=404, detail=f"no figures of run {run_id}; POST /runs/{run_id}/figures")
        return {"run_id": run_id, "figures": files}

    @app.get("/runs/{run_id}/figures/{kind}.{fmt}", responses=refusals(404))
    def get_run_figure(run_id: RunId, kind: str, fmt: str) -> FileResponse:
        if kind not in RUN_FIGURE_KINDS or fmt not in MEDIA_TYPES:
            kinds = ", ".join(RUN_FIGURE_KINDS)
            raise HTTPException(status_code=404, detail=f"unknown run figure; use {kinds} as png, svg or json")
        path = run_folder_or_404(run_id) / run_figure_name(run_id, kind, fmt)
        if not path.is_file():
            raise HTTPException(status_code=404, detail=f"run {run_id} has no {kind}.{fmt}")
        return FileResponse(path, media_type=MEDIA_TYPES[fmt])

    @app.post(
        "/runs/{run_id}/figures",
        status_code=202,
        dependencies=[Depends(bearer_guard(api_token))],
        responses=refusals(401, 404),
    )
    def render_run(run_id: RunId) -> dict[str, object]:
        """Render (again) one run's figures from its documents and analysis under the results folder."""
        try:
            job = service.submit_run(run_id)
        except FiguresError as exc:  # no documents, or a run folder that resolves elsewhere
            raise HTTPException(status_code=404, detail=str(exc)) from None
        return {"job_id": job.id, "state": job.state, "status_url": f"/jobs/{job.id}"}

    @app.get("/jobs/{job_id}", responses=refusals(404))
    def job_status(job_id: str) -> dict[str, object]:
        job = service.jobs.get(job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=f"no job {job_id!r}")
        return job.to_json()

    return app
