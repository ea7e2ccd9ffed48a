"""``mlpower lab up|run|down``: the compose lab as local processes on RabbitMQ.

``up`` starts every mlpower service of ``deploy/compose.yaml`` with the command and environment
its container gets (see ``compose_local``), in dependency order, each waited for on its health
check; ``run`` starts a measurement through the director's HTTP API, follows it, and prints the
analyzed summary; ``down`` stops what ``up`` started. RabbitMQ is the one from ``AMQP_URL``.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlpower.lab import procs
from mlpower.lab.compose_local import LocalService, load_compose, local_services, read_env_file, secret_values
from mlpower.lab.errors import LabError
from mlpower.lab.report import print_summary
from mlpower.lab.settings import LabSettings
from mlpower.schema import RunAnalyzed
from mlpower.settings import load_settings
from rich.console import Console

ONE_SHOT = {"lab-run"}  # compose's own demo trigger; `mlpower lab run` is its local counterpart
TOKEN_SECRET = "mlpower_api_token"


def _settings(workdir: Path | None) -> LabSettings:
    overrides: dict[str, Any] = {"workdir": workdir} if workdir is not None else {}
    return load_settings(LabSettings, **overrides)


def plan(settings: LabSettings, env_file: Path | None = None) -> dict[str, LocalService]:
    env_file = env_file or settings.compose_file.parent / ".env.example"
    variables = {**read_env_file(env_file), **os.environ}
    config = load_compose(settings.compose_file, variables)
    services = local_services(config, settings.workdir.resolve(), secret_values(config, variables),
                              overrides={"AMQP_URL": settings.amqp_url})
    return {name: service for name, service in services.items() if name not in ONE_SHOT}


def lab_up(workdir: Path | None = None, env_file: Path | None = None) -> Iterator[str]:
    settings = _settings(workdir)
    if any(procs.alive(s.pid) for s in procs.load_state(settings.workdir)):
        raise LabError(f"a lab is already up in {settings.workdir}: run 'mlpower lab down' first")
    started: list[procs.Started] = []
    try:
        for service in plan(settings, env_file).values():
            if service.health_url and procs.healthy(service.health_url):
                raise LabError(f"{service.health_url} already answers: another lab or service holds "
                               f"{service.name}'s port; stop it first")
            handle = procs.start(service.name, service.argv, service.env, settings.workdir / "logs",
                                 service.health_url)
            started.append(handle)
            procs.save_state(settings.workdir, started)
            procs.wait_healthy(handle)
            yield f"{service.name}: up (pid {handle.pid}, {service.health_url or 'no health check'}, log {handle.log})"
    except BaseException:
        for handle in reversed(started):
            procs.stop(handle.pid)
        procs.clear_state(settings.workdir)
        raise
    yield f"lab up: {len(started)} services; 'mlpower lab run' starts a measurement, 'mlpower lab down' stops them"


def lab_down(workdir: Path | None = None) -> Iterator[str]:
    settings = _settings(workdir)
    started = procs.load_state(settings.workdir)
    if not started:
        yield f"no lab is up in {settings.workdir}"
        return
    for handle in reversed(started):
        procs.stop(handle.pid)
        yield f"{handle.name}: stopped"
    procs.clear_state(settings.workdir)


def _token(settings: LabSettings) -> str:
    if settings.api_token:
        return settings.api_token
    secret = settings.workdir / "secrets" / TOKEN_SECRET  # written by `lab up` for its services
    return secret.read_text(encoding="utf-8").strip() if secret.is_file() else ""


def _request(url: str, *, body: dict[str, Any] | None = None, token: str = "", timeout_s: float = 10.0) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read() or b"null")


def _get_or_none(url: str) -> Any:
    try:
        return _request(url)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def lab_run(console: Console, *, workload: str = "builtin:offline", scenario: str = "Offline",
            timeout_s: float | None = None, poll_s: float = 1.0) -> RunAnalyzed:
    settings = _settings(None)
    token = _token(settings)
    timeout_s = timeout_s or settings.run_timeout_s
    try:
        accepted = _request(f"{settings.director_url}/runs", token=token,
                            body={"workload": workload, "scenario": scenario, "benchmark": "resnet-numpy (built-in)"})
    except urllib.error.HTTPError as exc:
        raise LabError(f"the director refused the run: HTTP {exc.code} {exc.read().decode(errors='replace')}") from exc
    except OSError as exc:
        raise LabError(f"the director at {settings.director_url} does not answer ({exc}): is the lab up?") from exc
    run_id = accepted["run_id"]
    console.print(f"run {run_id} started via {accepted['via']}; results in {accepted['output_dir']}")
    deadline, last = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        analyzed = _get_or_none(f"{settings.analytics_url}/runs/{run_id}")
        if analyzed is not None:
            result = RunAnalyzed.model_validate(analyzed)
            break
        status = _get_or_none(f"{settings.director_url}/runs/{run_id}") or {}
        line = f"director: {status.get('state', '?')}"
        if line != last:
            console.print(line)
            last = line
        time.sleep(poll_s)
    else:
        raise LabError(f"run {run_id} not analyzed within {timeout_s:.0f} s")
    rebuild = _request(f"{settings.figures_url}/rebuild", token=token, body={"figures": [], "mode": "paper"})
    job = _wait_job(f"{settings.figures_url}/jobs/{rebuild['job_id']}", deadline)
    print_summary(console, result, {
        "run tree": accepted["output_dir"],
        "analytics": f"{settings.analytics_url}/runs/{run_id}",
        "figures rebuilt": f"{len(job.get('rendered', []))} rendered, {len(job.get('unchanged', []))} unchanged "
                           f"({settings.figures_url}/figures)",
    })
    return result


def _wait_job(url: str, deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        job = _request(url)
        if job.get("state") in ("done", "failed"):
            if job["state"] == "failed":
                raise LabError(f"figure rebuild failed: {job.get('error')}")
            return dict(job)
        time.sleep(0.5)
    raise LabError(f"figure rebuild at {url} did not finish in time")
