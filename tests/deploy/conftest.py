"""Fixtures for checking deploy/: the real tools, and a real Prometheus on loopback.

``deploy_tools`` installs what is missing with ``scripts/install_deploy_tools.sh`` (pip into the
project's virtualenv, apt-get for Debian's prometheus package) once per session.

``prometheus_server`` starts a real Prometheus with a configuration derived from the repository's
(``deploy/prometheus/prometheus.yml`` and its alert rules), its scrape targets remapped to
loopback ports::

    def test_something(prometheus_server):
        prom = prometheus_server({"director:8000": "127.0.0.1:41234",   # a compose target, or
                                  "mlpower-analytics": ["127.0.0.1:41235"]})  # a whole job
        prom.wait_for_targets()
        series = prom.wait_for("mlpower_analyzer_power_watts")
        prom.query("sum(rate(mlpower_analyzer_samples_total[20s]))")

Jobs with no remapped target are left out; Prometheus' own job scrapes the started server. It
scrapes and evaluates rules every second, and is stopped when the test ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mlpower.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
INSTALL_SCRIPT = ROOT / "scripts" / "install_deploy_tools.sh"
VENV_BIN = Path(sys.executable).parent
SELF_TARGET = "localhost:9090"


@dataclass(frozen=True)
class DeployTools:
    docker_compose: Path
    kubectl: Path
    promtool: Path
    prometheus: Path


def _find_tools() -> DeployTools | None:
    found = {
        "docker_compose": VENV_BIN / "docker-compose",
        "kubectl": VENV_BIN / "kubectl",
        "promtool": shutil.which("promtool"),
        "prometheus": shutil.which("prometheus"),
    }
    if not all(path and os.access(path, os.X_OK) for path in found.values()):
        return None
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        return None
    return DeployTools(**{name: Path(str(path)) for name, path in found.items()})


@pytest.fixture(scope="session")
def deploy_tools() -> DeployTools:
    tools = _find_tools()
    if tools is None:
        result = subprocess.run(["bash", str(INSTALL_SCRIPT)], env={**os.environ, "PYTHON": sys.executable},
                                capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            pytest.fail(f"scripts/install_deploy_tools.sh failed:\n{result.stdout}\n{result.stderr}")
        tools = _find_tools()
        assert tools is not None, "install_deploy_tools.sh ran but a tool is still missing"
    return tools


# ---- Prometheus ------------------------------------------------------------------------------

class PromQLError(Exception):
    """Prometheus refused an expression (HTTP 400/422): it does not parse or cannot be evaluated."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def derive_config(scrape_targets: Mapping[str, str | Sequence[str]], self_address: str,
                  source: Path = PROMETHEUS_CONFIG, interval: str = "1s") -> dict[str, Any]:
    """The repository's configuration with targets remapped: keys are targets or job names."""
    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    mapping = {SELF_TARGET: [self_address]}
    mapping.update({key: [value] if isinstance(value, str) else list(value) for key, value in scrape_targets.items()})
    known = {SELF_TARGET}
    jobs = []
    for job in config["scrape_configs"]:
        known.add(job["job_name"])
        static_configs = []
        for static in job.get("static_configs", []):
            known.update(static["targets"])
            if job["job_name"] in mapping:
                targets = mapping[job["job_name"]]
            else:
                targets = [new for target in static["targets"] for new in mapping.get(target, [])]
            if targets:
                static_configs.append({**static, "targets": targets})
        if static_configs:
            jobs.append({**job, "static_configs": static_configs})
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ValueError(f"not targets or jobs of {source.name}: {unknown}")
    config["global"] = {**config.get("global", {}), "scrape_interval": interval, "scrape_timeout": interval,
                        "evaluation_interval": interval}
    config["rule_files"] = [str((source.parent / rule).resolve()) for rule in config.get("rule_files", [])]
    config["scrape_configs"] = jobs
    return config


@dataclass
class PrometheusServer:
    url: str
    config_path: Path
    config: dict[str, Any]
    process: subprocess.Popen[bytes]
    client: httpx.Client = field(repr=False)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate an instant query; the result vector (or [] ), PromQLError when it does not parse."""
        response = self.client.get("/api/v1/query", params={"query": expr})
        if response.status_code in (400, 422):
            raise PromQLError(f"{expr!r}: {response.json().get('error', response.text)}")
        response.raise_for_status()
        data = response.json()["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def wait_for(self, expr: str, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        """Poll until the expression returns data; its result, or AssertionError at the timeout."""
        found: list[dict[str, Any]] = wait_for(lambda: self.query(expr), timeout_s, what=f"data for {expr!r}",
                                               poll_s=0.25)
        return found

    def targets(self) -> list[dict[str, Any]]:
        return list(self.client.get("/api/v1/targets").json()["data"]["activeTargets"])

    def wait_for_targets(self, timeout_s: float = 15.0) -> None:
        """Wait until every configured target has been scraped successfully."""
        seen: list[dict[str, Any]] = []

        def all_up() -> bool:
            seen[:] = self.targets()
            return bool(seen) and all(target["health"] == "up" for target in seen)

        try:
            wait_for(all_up, timeout_s, what="every target up", poll_s=0.25)
        except AssertionError as exc:
            down = {t["scrapeUrl"]: t.get("lastError") or t["health"] for t in seen if t["health"] != "up"}
            raise AssertionError(f"targets not up after {timeout_s} s: {down}") from exc

    def rules(self) -> list[dict[str, Any]]:
        groups = self.client.get("/api/v1/rules").json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]


def _start_prometheus(binary: Path, workdir: Path, scrape_targets: Mapping[str, str | Sequence[str]]
                      ) -> PrometheusServer:
    port = _free_port()
    address = f"127.0.0.1:{port}"
    config = derive_config(scrape_targets, address)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [str(binary), f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address={address}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://{address}", timeout=5.0)
    server = PrometheusServer(f"http://{address}", config_path, config, process, client)
    def ready_or_exited() -> str:
        if process.poll() is not None:
            return "exited"
        try:
            return "ready" if client.get("/-/ready").status_code == 200 else ""
        except httpx.TransportError:
            return ""

    try:
        if wait_for(ready_or_exited, 20.0, what="prometheus to be ready", poll_s=0.1) == "ready":
            return server
    except AssertionError:
        pass
    _stop(server)
    raise RuntimeError(f"prometheus did not become ready:\n{(workdir / 'prometheus.log').read_text()[-3000:]}")


def _stop(server: PrometheusServer) -> None:
    server.client.close()
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)


@pytest.fixture
def prometheus_server(deploy_tools: DeployTools, tmp_path_factory: pytest.TempPathFactory
                      ) -> Iterator[Callable[[Mapping[str, str | Sequence[str]]], PrometheusServer]]:
    """A factory: ``prometheus_server(scrape_targets)`` starts one real Prometheus (see module doc)."""
    started: list[PrometheusServer] = []

    def start(scrape_targets: Mapping[str, str | Sequence[str]]) -> PrometheusServer:
        server = _start_prometheus(deploy_tools.prometheus, tmp_path_factory.mktemp("prometheus"), scrape_targets)
        started.append(server)
        return server

    yield start
    for server in started:
        _stop(server)
