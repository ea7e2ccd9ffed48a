"""The director's HTTP control API (FastAPI): runs, status, artifacts, health, metrics.

Control endpoints (POST) need ``Authorization: Bearer <MLPOWER_API_TOKEN>`` when a token is set.
A run started here is a ``RunPlan`` for ``Director.run``, as a bus ``StartRun`` is: it goes
through the SUT agent (``workload`` given and a bus present) or is timed (``phase_s`` seconds per
mode, e.g. idle power). Artifacts are served from the run's own folder only: paths that leave it
are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.responses import FileResponse
from mlpower.errors import MlpowerError
from mlpower.http_auth import bearer_guard
from mlpower.http_limits import BodyLimit
from mlpower.http_refusals import refusals
from mlpower.readiness import Check, add_readyz
from mlpower.schema import WorkloadField
from pydantic import BaseModel, ConfigDict, Field

from .director import Busy, Director
from .metrics import CONTENT_TYPE
from .run_plan import DRIVERS, AgentWorkload, PlanError, RunPlan, TimedWorkload, Workload
from .session_states import ManualRanges


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(default="", pattern=r"^[A-Za-z0-9_\-]{0,128}$")
    # labels in server.json, the run stream and the run-info metric: short, one line, no control characters
    benchmark: str = Field(default="", max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")
    scenario: str = Field(default="", max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")
    modes: tuple[Literal["ranging", "testing"], ...] = ("ranging", "testing")
    sample_interval_s: float | None = Field(default=None, ge=0.1, le=60)
    phase_s: float = Field(default=10.0, gt=0, le=86400, description="timed run: seconds per mode")
    workload: WorkloadField = Field(default=None, description="run through the SUT agent over the bus: a workload "
                                    "its owner declared, by name (with duration_s, scenario), never a command")
    voltage_range_v: float | None = Field(default=None, gt=0)
    current_range_a: float | None = Field(default=None, gt=0)

    def plan(self, agent: bool) -> RunPlan:
        """The plan this request asks for: through the agent when it names a workload, else timed."""
        manual = None
        if self.voltage_range_v is not None and self.current_range_a is not None:
            manual = ManualRanges(self.voltage_range_v, self.current_range_a)
        if self.workload is not None and not agent:
            raise PlanError("a workload runs on the SUT agent, and this director has no bus to reach it")
        workload: Workload = AgentWorkload(self.workload) if self.workload is not None else TimedWorkload(self.phase_s)
        recorded = workload.recorded() if isinstance(workload, AgentWorkload) else None
        return RunPlan(workload=workload, run_id=self.run_id, benchmark=self.benchmark, scenario=self.scenario,
                       modes=self.modes, sample_interval_s=self.sample_interval_s, manual_ranges=manual,
                       settings={"driver": DRIVERS[type(workload)], "workload": recorded, "phase_s": self.phase_s})


class RunAccepted(BaseModel):
    run_id: str
    output_dir: str
    via: Literal["timed", "agent"]


def create_app(director: Director, *, api_token: str = "",
               checks: Mapping[str, Check] | None = None) -> FastAPI:
    app = FastAPI(title="mlpower director", version="1", description=__doc__, responses=refusals(413, 422))
    app.add_middleware(BodyLimit)
    control = [Depends(bearer_guard(api_token))]

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        # alive either way (200); "degraded" says the analyzer could not be opened at start-up or
        # at the last idle probe, and why, so a lab is not told "ok" with an unusable meter
        problems = dict(director.analyzer_problems)
        if problems:
            return {"status": "degraded", "analyzers": problems}
        return {"status": "ok"}

    add_readyz(app, checks or {})

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(director.metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/status")
    def status() -> dict[str, Any]:
        active = director.active
        return {
            "sut": director.settings.sut, "lab": director.settings.lab, "analyzers": list(director.settings.analyzers),
            "busy": director.busy,
            "run": None if active is None else {"run_id": active.run_id, "state": active.state.value,
                                                "reason": active.status_reason},
        }

    @app.get("/runs")
    def list_runs() -> list[dict[str, Any]]:
        return director.list_runs()

    @app.post("/runs", status_code=202, dependencies=control, response_model=RunAccepted,
              responses=refusals(401, 409, 503))
    def start_run(request: RunRequest) -> RunAccepted:
        try:
            plan = request.plan(agent=director.agent is not None)
        except PlanError as exc:
            raise HTTPException(422, str(exc)) from exc
        try:
            session = director.run(plan)
        except Busy as exc:
            raise HTTPException(409, str(exc)) from exc
        except MlpowerError as exc:  # the request passed validation: what failed is on this side (the analyzer)
            raise HTTPException(503, str(exc)) from exc
        via: Literal["timed", "agent"] = "agent" if isinstance(plan.workload, AgentWorkload) else "timed"
        return RunAccepted(run_id=session.run_id, output_dir=str(session.dir), via=via)

    @app.get("/runs/{run_id}", responses=refusals(404))
    def run_status(run_id: str) -> dict[str, Any]:
        found = _status_or_404(director, run_id)
        folder = Path(found["output_dir"])
        found["files"] = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        return found

    @app.post("/runs/{run_id}/stop", dependencies=control, responses=refusals(401, 404))
    def stop_run(run_id: str) -> dict[str, Any]:
        _status_or_404(director, run_id)
        return {"run_id": run_id, "stopped": director.stop_run(run_id, "stopped over HTTP")}

    @app.get("/runs/{run_id}/files/{path:path}", responses=refusals(403, 404))
    def download(run_id: str, path: str) -> FileResponse:
        _status_or_404(director, run_id)
        folder = director.run_dir(run_id).resolve()
        if "\x00" in path:  # the OS refuses such a name; refuse it before it becomes a 500
            raise HTTPException(404, f"no file {path!r} in run {run_id}")
        target = (folder / path).resolve()  # follows symlinks: one that points out is caught below
        if not target.is_relative_to(folder) or ".." in Path(path).parts:
            raise HTTPException(403, "outside the run's folder")
        if not target.is_file():
            raise HTTPException(404, f"no file {path} in run {run_id}")
        return FileResponse(target)

    return app


def _status_or_404(director: Director, run_id: str) -> dict[str, Any]:
    try:
        found = director.run_status(run_id)
    except MlpowerError as exc:
        raise HTTPException(404, str(exc)) from exc
    if found is None:
        raise HTTPException(404, f"no run {run_id}")
    return found
