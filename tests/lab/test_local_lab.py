"""The compose lab as local processes: same commands and environment as the containers, the real
RabbitMQ, a real Prometheus scraping every service, a measurement from start to analyzed run and
rebuilt figures, and every PromQL expression of the dashboards and alert rules returning data."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from mlpower.broker_permissions import accounts
from mlpower.lab.local_lab import lab_down, lab_up, plan
from mlpower.lab.run_client import lab_run
from mlpower.lab.settings import LabSettings
from mlpower.schema import RunAnalyzed
from mlpower.settings import load_settings
from mlpower.testing import wait_for
from rich.console import Console

from tests.deploy.compose_lab import env_file_with_secrets
from tests.deploy.compose_lab import local_services as compose_binary_services
from tests.deploy.conftest import deploy_tools, prometheus_server  # noqa: F401 - fixtures
from tests.deploy.promql import dashboard_queries, rule_queries

COMPOSE_VARIABLES = ("MLPOWER_LAB", "MLPOWER_SUT", "MLPOWER_AGENT_DURATION_S", "MLPOWER_ANALYZER_SLEEP_S")
SCRAPE = {"director:8000": "127.0.0.1:8000", "analytics:8001": "127.0.0.1:8001", "figures:8002": "127.0.0.1:8002",
          "analyzer-sim:8003": "127.0.0.1:8003", "sut-agent:8004": "127.0.0.1:8004"}


def test_local_plan_matches_what_compose_itself_resolves(deploy_tools, tmp_path: Path,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name in COMPOSE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLPOWER_LAB_DIR", str(tmp_path))
    settings = load_settings(LabSettings)
    env_file = env_file_with_secrets(tmp_path)  # deploy/.env.example ships its secrets empty
    ours = plan(settings, env_file)
    theirs = compose_binary_services(deploy_tools.docker_compose, tmp_path.resolve(), {"AMQP_URL": settings.amqp_url},
                                     env_file)
    theirs.pop("lab-run")
    assert list(ours) == list(theirs)
    for name in ours:
        assert ours[name] == theirs[name], name
    assert all(service.health_url for service in ours.values())
    assert "127.0.0.1" in ours["director"].env["MLPOWER_ANALYZER"]


@pytest.fixture
def running_lab(tmp_path: Path, amqp_url: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MLPOWER_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.setenv("AMQP_URL", amqp_url)
    monkeypatch.setenv("MLPOWER_LAB", f"lab{unique}")
    monkeypatch.setenv("MLPOWER_SUT", f"sut{unique}")  # its own command queues on the shared broker
    monkeypatch.setenv("MLPOWER_AGENT_DURATION_S", "2")
    monkeypatch.setenv("MLPOWER_ANALYZER_SLEEP_S", "0.3")
    # deploy/.env.example ships its secrets empty; compose (and so `lab up`) wants real ones
    monkeypatch.setenv("RABBITMQ_PASSWORD", secrets.token_urlsafe(32))
    monkeypatch.setenv("MLPOWER_API_TOKEN", secrets.token_urlsafe(32))
    try:
        lines = list(lab_up())
        assert lines[-1].startswith("lab up: 5 services")
        # every service logged in as its own user (broker_permissions' rights), none as the lab's
        state = json.loads((tmp_path / "lab" / "broker.json").read_text())
        vhost = unquote(urlsplit(amqp_url).path[1:]) or "/"
        listed = subprocess.run(["rabbitmqctl", "-q", "list_connections", "-p", vhost, "user"], capture_output=True,
                                text=True, timeout=60, check=True).stdout.split()
        wanted = {f"{state['user']}-{account}" for account in accounts(f"lab{unique}", [f"sut{unique}"])}
        assert wanted <= set(listed) and state["user"] not in listed, (wanted, listed)
        yield tmp_path / "lab"
    finally:
        stopped = list(lab_down())
        assert all(line.endswith(("stopped", "deleted")) for line in stopped) or stopped[0].startswith("no lab")


@pytest.mark.slow
def test_a_measurement_on_the_local_lab_reaches_analytics_figures_and_every_dashboard_query(
        running_lab: Path, prometheus_server) -> None:  # noqa: F811
    prometheus = prometheus_server(SCRAPE)
    prometheus.wait_for_targets(timeout_s=30)
    console = Console(record=True, width=140)
    outcome: dict[str, object] = {}

    def measure() -> None:
        try:
            outcome["analyzed"] = lab_run(console, timeout_s=240, poll_s=0.5).analyzed
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    runner = threading.Thread(target=measure, daemon=True)
    runner.start()
    # Some expressions only have data while a run is in progress (an alert on a silent analyzer
    # during a run): poll all of them during the run and for a while after it.
    pending = {query.expr: query for query in dashboard_queries() + rule_queries()}
    after_run: list[float] = []  # when the run was seen to end: polling goes on for 20 s after it

    def all_had_data() -> bool:
        for expr in list(pending):
            if prometheus.query(expr):
                del pending[expr]
        if not after_run and not runner.is_alive():
            after_run.append(time.monotonic())
        return not pending or bool(after_run and time.monotonic() - after_run[0] >= 20)

    wait_for(all_had_data, 900, what="every dashboard and rule expression to have data", poll_s=0.5)
    runner.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    analyzed = outcome["analyzed"]
    assert isinstance(analyzed, RunAnalyzed)
    summary = analyzed.summary
    assert summary.avg_power_w is not None and summary.avg_power_w > 0
    assert summary.energy_j and summary.performance
    assert "figures rebuilt" in console.export_text()
    results = running_lab / "volumes" / "results"
    run_dirs = [p for p in results.iterdir() if (p / "documents.jsonl").is_file()]
    assert len(run_dirs) == 1 and (run_dirs[0] / "power" / "server.json").is_file()
    assert (run_dirs[0] / "run_1" / "mlperf_log_detail.txt").is_file()  # the agent's LoadGen logs, same tree
    assert not pending, "expressions without data:\n" + "\n".join(f"{q.where}: {q.expr}" for q in pending.values())
