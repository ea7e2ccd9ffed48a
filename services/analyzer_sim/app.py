"""The simulator's control API (FastAPI): load, faults, state, /metrics and /healthz.

Every fault has one endpoint taking ``{"on": bool, ...}``, so a test or an operator can switch it
on and off. With ``MLPOWER_API_TOKEN`` set, every endpoint except /healthz and /metrics wants
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Response
from mlpower.analyzer_sim.errors import LoadSpecError
from mlpower.http_auth import bearer_guard
from mlpower.http_limits import BodyLimit
from mlpower.http_refusals import refusals
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from mlpower.analyzer_sim.simulator import SimulatorHandle


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoadBody(_Body):
    spec: str = Field(min_length=1, max_length=4096)


class Switch(_Body):
    on: bool = True


class StallBody(Switch):
    seconds: float = Field(default=5.0, ge=0, le=600)


class BurstBody(Switch):
    kind: Literal["nan", "overrange"] = "nan"
    updates: int = Field(default=5, ge=1, le=100_000)


class DriftBody(Switch):
    drift_ppm: float = Field(default=1000.0, ge=-1e6, le=1e6)
    offset_s: float = Field(default=0.0, ge=-86400, le=86400)


class ErrorBody(Switch):
    code: int = Field(default=350, ge=1, le=999)


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def create_app(handle: SimulatorHandle, api_token: str = "") -> FastAPI:
    app = FastAPI(title="mlpower WT310E simulator", version="1", responses=refusals(413, 422))
    app.add_middleware(BodyLimit)
    guarded = [Depends(bearer_guard(api_token))]

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "scpi_port": handle.port, "pty": handle.pty_path}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(handle.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/state", dependencies=guarded, responses=refusals(401))
    def state() -> dict[str, Any]:
        inst = handle.instrument
        with inst.lock:
            r = inst.advance()
            s = inst.settings
            elements = [
                {**truth, "true_power_w": _json_number(truth["true_power_w"]),
                 "reading": {"power_w": _json_number(e.power_w), "voltage_v": _json_number(e.voltage_v),
                             "current_a": _json_number(e.current_a), "power_factor": _json_number(e.power_factor),
                             "uncertainty_w": _json_number(e.uncertainty_w)},
                 "voltage_range_v": ranges.voltage_range_v, "current_range_a": ranges.current_range_a,
                 "voltage_auto": ranges.voltage_auto, "current_auto": ranges.current_auto}
                for truth, e, ranges in zip(handle.element_truth(), inst.readings, s.elements, strict=True)]
            return {
                "load": handle.model.spec,
                "model": inst.model.name,
                "sut_true_power_w": _json_number(handle.sut_true_power_w),
                "elements": elements,
                "true_power_w": _json_number(handle.true_power_w),
                "reading": {"power_w": _json_number(r.power_w), "voltage_v": _json_number(r.voltage_v),
                            "current_a": _json_number(r.current_a), "power_factor": _json_number(r.power_factor)},
                "voltage_range_v": s.voltage_range_v, "current_range_a": s.current_range_a,
                "voltage_auto": s.voltage_auto, "current_auto": s.current_auto, "rate_s": s.rate_s,
                "faults": handle.faults.as_dict(),
            }

    @app.put("/load", dependencies=guarded, responses=refusals(401))
    def set_load(body: LoadBody) -> dict[str, str]:
        try:
            handle.set_load(body.spec)
        except LoadSpecError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        return {"load": handle.model.spec}

    @app.get("/faults", dependencies=guarded, responses=refusals(401))
    def faults() -> dict[str, Any]:
        return handle.faults.as_dict()

    @app.post("/faults/drop_connection", dependencies=guarded, responses=refusals(401))
    def drop_connection(body: Switch) -> dict[str, Any]:
        handle.faults.drop_connection(body.on)
        return handle.faults.as_dict()

    @app.post("/faults/stall", dependencies=guarded, responses=refusals(401))
    def stall(body: StallBody) -> dict[str, Any]:
        handle.faults.stall(body.seconds if body.on else 0.0)
        return handle.faults.as_dict()

    @app.post("/faults/burst", dependencies=guarded, responses=refusals(401))
    def burst(body: BurstBody) -> dict[str, Any]:
        handle.faults.burst(body.kind, body.updates if body.on else 0)
        return handle.faults.as_dict()

    @app.post("/faults/clock_drift", dependencies=guarded, responses=refusals(401))
    def clock_drift(body: DriftBody) -> dict[str, Any]:
        handle.faults.clock_drift(body.drift_ppm if body.on else 0.0, body.offset_s if body.on else 0.0)
        return handle.faults.as_dict()

    @app.post("/faults/error_queue", dependencies=guarded, responses=refusals(401))
    def error_queue(body: ErrorBody) -> dict[str, Any]:
        handle.faults.error_queue(body.code if body.on else 0)
        return handle.faults.as_dict()

    @app.post("/faults/disconnect", dependencies=guarded, responses=refusals(401))
    def disconnect(body: Switch) -> dict[str, Any]:
        handle.faults.disconnect(body.on)
        return handle.faults.as_dict()

    @app.post("/faults/clear", dependencies=guarded, responses=refusals(401))
    def clear() -> dict[str, Any]:
        handle.faults.clear()
        return handle.faults.as_dict()

    return app
