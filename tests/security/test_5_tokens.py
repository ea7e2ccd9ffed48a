"""The token on every control endpoint of the running lab, found from each service's own OpenAPI
document: refused without it or with a wrong one (401), accepted with it whatever the scheme's case."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.security.lab import HTTP_SERVICES, Lab
from tests.security.ledger import LEDGER

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

GUARDED_READS = {"sim-control": {"/state", "/faults"}}  # the simulator's fault state: guarded by design
READ_ONLY = {"analytics", "agent"}


def _control_endpoints(lab: Lab, service: str) -> list[tuple[str, str, bool]]:
    """(method, path, takes a body) of every endpoint that needs the token."""
    document = lab.http("GET", service, "/openapi.json").json()
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method.upper() not in ("GET", "HEAD") or path in GUARDED_READS.get(service, set()):
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "no-such-run", path), "requestBody" in operation))
    return found


def _wrong(token: str) -> list[str | None]:
    return [None, "", "Bearer", f"Bearer {token}x", f"Bearer {token[:-1]}", f"bearer {token[::-1]}",
            f"Basic {token}", token, f"Bearer{token}", "Bearer change-me-api-token", "Bearer tök-ÿ"]


@pytest.mark.parametrize("service", sorted(HTTP_SERVICES))
def test_every_control_endpoint_wants_the_token(lab: Lab, service: str, measured: dict[str, Any]) -> None:
    endpoints = _control_endpoints(lab, service)
    if service in READ_ONLY:
        assert endpoints == [], f"{service} grew a control endpoint: guard it with mlpower.http_auth.bearer_guard"
        return
    assert endpoints, f"{service} has no control endpoint?"
    # an invalid body: with the right token the answer is 422 or 404, and nothing is started or changed
    body: dict[str, Any] = {"figures": 5} if service == "figures" else {"not-a-field": True}
    for method, path, takes_body in endpoints:
        for authorization in _wrong(lab.token):
            headers = {} if authorization is None else {"Authorization": authorization.encode()}
            answer = lab.http(method, service, path, json=body, headers=headers)
            refused = answer.status_code == 401 and answer.headers.get("www-authenticate") == "Bearer"
            LEDGER.attempt("token", f"{method} {service}{path} with {str(authorization)[:12]!r}", refused)
            assert refused, (method, path, authorization, answer.status_code)
        # with the token: a guarded read answers; an invalid body is refused, so nothing acts (an endpoint
        # without a body, like /faults/clear, acts: clearing faults none was set)
        accepted = (200, 404) if method == "GET" or not takes_body else (404, 405, 422)
        for scheme in ("Bearer", "bearer", "BEARER"):
            answer = lab.http(method, service, path, json=None if method == "GET" else body,
                              authorization=f"{scheme} {lab.token}")
            assert answer.status_code in accepted, (method, path, scheme, answer.status_code, answer.text[:300])
    for path in ("/healthz", "/metrics"):  # probes and Prometheus carry no token
        assert lab.http("GET", service, path).status_code == 200
