"""The documented refusals of the services' HTTP APIs, so that each OpenAPI schema says what it answers.

    app = FastAPI(..., responses=refusals(413, 422))          # every route
    @app.get("/runs/{run_id}", responses=refusals(404))       # this route

Every refusal body is ``{"detail": ...}``: a sentence from the service, or FastAPI's list of
validation errors for a request that does not match the schema (both under 422, which this
replaces FastAPI's list-only 422 with). Schemathesis holds each app to what it declares here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Refusal(BaseModel):
    detail: str | list[dict[str, Any]]


DESCRIPTIONS: dict[int, str] = {
    400: "the request is valid but cannot be carried out",
    401: "missing or wrong bearer token (MLPOWER_API_TOKEN is set)",
    403: "the path leaves the run's folder",
    404: "no such resource",
    409: "conflicts with what is running",
    413: "request body too large",
    422: "the request does not match the schema, or a value is not acceptable",
    503: "a part the service needs (the analyzer, its configuration) is unavailable now; the request was fine",
}


def refusals(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Refusal, "description": DESCRIPTIONS[code]} for code in codes}
