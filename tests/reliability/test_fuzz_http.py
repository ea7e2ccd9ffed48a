"""Fuzz every HTTP API against its own OpenAPI schema (schemathesis 3.x, in process over ASGI).

For each operation of the director, analytics, figures and simulator-control apps a bounded,
derandomized set of generated requests (valid and invalid by the schema) must never get a 5xx,
and every response must conform to the schema the app publishes. No token is configured here so
the generated requests reach the handlers; tests/reliability/test_security_auth.py covers the 401s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
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
from mlpower.settings import load_settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from tests.director.conftest import fast_settings
from tests.director.fakes import FakeSource
from tests.reliability import hypothesis_compat
from tests.reliability.ledger import LEDGER

EXAMPLES_PER_OPERATION = 100
CHECKS = (not_a_server_error, response_schema_conformance, status_code_conformance)
hypothesis_compat.install()


@pytest.fixture
def director(tmp_path: Path) -> Iterator[FastAPI]:
    d = Director(fast_settings(tmp_path / "runs"), source_factory=lambda resource, interval_s: FakeSource())
    yield director_app(d)
    active = d.active
    if active is not None and not active.ended:  # a fuzzed POST /runs may have started a timed run
        d.stop_run(active.run_id, "fuzzing over")


@pytest.fixture
def analytics(tmp_path: Path) -> Iterator[FastAPI]:
    service = AnalyticsService(load_settings(AnalyticsSettings, bus="memory", results_dir=tmp_path), InMemoryBus())
    service.start()  # subscribed, as deployed: /readyz answers 503 only for a real fault
    yield analytics_app(service)
    service.stop()


@pytest.fixture
def figures(tmp_path: Path) -> Iterator[FastAPI]:
    # no data: a fuzzed rebuild job fails at once instead of rendering the paper's figures on 2 cores
    service = FiguresService(tmp_path / "no-data", tmp_path / "figures", workers=1)
    yield figures_app(service)
    service.close()


@pytest.fixture
def simulator() -> Iterator[FastAPI]:
    with start_simulator(port=0, clock=VirtualClock()) as handle:
        yield simulator_app(handle)
        handle.faults.clear()


def _fuzz(name: str, app: FastAPI) -> None:
    # FastAPI publishes OpenAPI 3.1; schemathesis 3.x generates from it when told to read it as 3.0
    schema = schemathesis.from_asgi("/openapi.json", app, force_schema_version="30")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, f"{name} publishes no operations"
    for operation in operations:
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            LEDGER.fuzzed(f"http {name}")
            response = case.call_asgi()
            try:
                case.validate_response(response, checks=CHECKS)
            except AssertionError as exc:
                if response.status_code >= 500:
                    LEDGER.crash(f"http {name} {case.method} {case.formatted_path}: {response.status_code}")
                raise AssertionError(f"{case.method} {case.formatted_path}: {exc}") from exc

        call()


@pytest.mark.parametrize("name", ["director", "analytics", "figures", "simulator"])
def test_api_conforms_to_its_schema_and_never_answers_5xx(name: str, request: pytest.FixtureRequest) -> None:
    _fuzz(name, request.getfixturevalue(name))
