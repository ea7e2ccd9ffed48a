"""Control and rebuild endpoints need the bearer token when one is configured; open when none is.

Protected endpoints are found from each app's routes (every non-GET route, plus the simulator's
state and fault listings, which it guards by design), so a control endpoint added later without
the guard fails here. Analytics is read-only: it must stay so, or grow a guard.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from mlpower.analytics.app import create_app as analytics_app
from mlpower.analytics.service import AnalyticsService
from mlpower.analytics.settings import AnalyticsSettings
from mlpower.analyzer_sim import VirtualClock, start_simulator
from mlpower.analyzer_sim.app import create_app as simulator_app
from mlpower.bus import InMemoryBus
from mlpower.director.director import Director
from mlpower.director.http_api import create_app as director_app
from mlpower.figures.app import create_app as figures_app
from mlpower.figures.service import FiguresService
from mlpower.settings import PROJECT_ROOT, load_settings

from tests.director.conftest import fast_settings
from tests.director.fakes import FakeSource

TOKEN = "tok-9f2c7e1d-security-test"
WRONG = [None, "", "Bearer", "Bearer ", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Bearer{TOKEN}",
         f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN} ", f"Bear {TOKEN}", "Bearer tök-non-ascii-ÿ", f"\tBearer {TOKEN}"]
# RFC 7235: the scheme name is case-insensitive and one or more spaces separate it from the token
RIGHT = [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"bEaReR {TOKEN}", f"Bearer  {TOKEN}"]
GUARDED_GETS = {"simulator": {"/state", "/faults"}}


def _director(tmp_path: Path, token: str) -> Iterator[FastAPI]:
    d = Director(fast_settings(tmp_path / "runs"), source_factory=lambda resource, interval_s: FakeSource())
    yield director_app(d, api_token=token)
    active = d.active
    if active is not None and not active.ended:
        d.stop_run(active.run_id, "test over")


def _figures(tmp_path: Path, token: str) -> Iterator[FastAPI]:
    service = FiguresService(tmp_path / "no-data", tmp_path / "figures", workers=1)  # a rebuild fails at once
    yield figures_app(service, api_token=token)
    service.close()


def _simulator(tmp_path: Path, token: str) -> Iterator[FastAPI]:
    with start_simulator(port=0, clock=VirtualClock()) as handle:
        yield simulator_app(handle, token)
        handle.faults.clear()


def _analytics(tmp_path: Path, token: str) -> Iterator[FastAPI]:
    yield analytics_app(AnalyticsService(load_settings(AnalyticsSettings, bus="memory", results_dir=tmp_path),
                                         InMemoryBus()))


APPS = {"director": _director, "figures": _figures, "simulator": _simulator, "analytics": _analytics}


def _protected(name: str, app: FastAPI) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for method in sorted(route.methods):
            if method not in ("GET", "HEAD") or route.path in GUARDED_GETS.get(name, set()):
                found.append((method, re.sub(r"\{[^}]+\}", "x", route.path)))
    return found


def _call(client: TestClient, method: str, path: str, authorization: str | None) -> int:
    body = None if method == "GET" else {}
    return client.request(method, path, json=body, headers=_header(authorization)).status_code


def _header(authorization: str | None) -> dict[str, bytes]:
    # bytes: a non-ASCII header must reach the server (hmac.compare_digest on such a str raised: a 500)
    return {} if authorization is None else {"Authorization": authorization.encode("utf-8")}


@pytest.mark.parametrize("name", ["director", "figures", "simulator"])
def test_protected_endpoints_refuse_missing_and_wrong_tokens(name: str, tmp_path: Path) -> None:
    for app in APPS[name](tmp_path, TOKEN):
        endpoints = _protected(name, app)
        assert endpoints, f"{name} has no control endpoint?"
        client = TestClient(app, raise_server_exceptions=False)
        for method, path in endpoints:
            for authorization in WRONG:
                response = client.request(method, path, json=None if method == "GET" else {},
                                          headers=_header(authorization))
                assert response.status_code == 401, (method, path, authorization, response.status_code)
                assert response.headers.get("www-authenticate") == "Bearer", (method, path)
                assert TOKEN not in response.text
            for authorization in RIGHT:
                assert _call(client, method, path, authorization) != 401, (method, path, authorization)
        # reading stays open: health and metrics are for probes and Prometheus, which carry no token
        assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200


@pytest.mark.parametrize("name", ["director", "figures", "simulator"])
def test_without_a_configured_token_the_endpoints_are_open(name: str, tmp_path: Path) -> None:
    for app in APPS[name](tmp_path, ""):
        client = TestClient(app, raise_server_exceptions=False)
        for method, path in _protected(name, app):
            assert _call(client, method, path, None) != 401, (method, path)
            assert _call(client, method, path, "Bearer anything") != 401, (method, path)


def test_analytics_is_read_only(tmp_path: Path) -> None:
    for app in _analytics(tmp_path, ""):
        assert _protected("analytics", app) == [], "analytics grew a control endpoint: guard it with bearer_guard"


def test_one_shared_guard_and_constant_time_comparison() -> None:
    """The token check lives in mlpower.http_auth only; services use it instead of their own copies."""
    services = PROJECT_ROOT / "services"
    for app in sorted(services.glob("*/app.py")):
        text = app.read_text(encoding="utf-8")
        assert "compare_digest" not in text and "Bearer {" not in text, f"{app} checks tokens itself"
        if "api_token" in text:
            assert "bearer_guard(" in text, f"{app} takes a token but does not use the shared guard"
    guard = (PROJECT_ROOT / "shared" / "http_auth.py").read_text(encoding="utf-8")
    assert "hmac.compare_digest(" in guard
