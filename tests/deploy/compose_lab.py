"""The compose lab's mlpower services as local processes: their command and environment, from
the compose file itself (`docker-compose config`, so interpolation and anchors are Compose's own).

For a system test that runs the lab without containers: service hostnames become 127.0.0.1 (each
service has its own default port, so nothing clashes), volume and secret paths become folders and
files under a work folder, and ``overrides`` replace variables outright (``AMQP_URL`` for the
test's broker, for example)::

    services = local_services(deploy_tools.docker_compose, tmp_path, {"AMQP_URL": amqp_url})
    for service in services.values():        # in dependency order
        subprocess.Popen(service.argv, env={**os.environ, **service.env})
        wait for service.health_url (None for the one-shot lab-run)
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .conftest import DEPLOY

COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
MLPOWER_DOCKERFILE = "deploy/Dockerfile"


@dataclass(frozen=True)
class LocalService:
    name: str
    argv: list[str]              # ["mlpower", <sub-command>, ...]
    env: dict[str, str]          # the service's whole environment from the compose file, remapped
    health_url: str | None       # what its health check probes; None for one-shot services
    depends_on: list[str]


def compose_config(docker_compose: Path, env_file: Path = ENV_EXAMPLE) -> dict[str, Any]:
    result = subprocess.run([str(docker_compose), "-f", str(COMPOSE), "--env-file", str(env_file),
                             "config", "--format", "json"], capture_output=True, text=True, timeout=60, check=True)
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def _env_file_values(env_file: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in env_file.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#") and "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _order(services: dict[str, dict[str, Any]]) -> list[str]:
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name not in ordered:
            for dependency in sorted(services[name].get("depends_on", {})):
                if dependency in services:
                    visit(dependency)
            ordered.append(name)

    for name in sorted(services):
        visit(name)
    return ordered


def local_services(docker_compose: Path, workdir: Path, overrides: Mapping[str, str] | None = None,
                   env_file: Path = ENV_EXAMPLE) -> dict[str, LocalService]:
    """The services built from deploy/Dockerfile, in dependency order, ready to run locally."""
    config = compose_config(docker_compose, env_file)
    secret_values = {name: _env_file_values(env_file).get(secret.get("environment", ""), "")
                     for name, secret in config.get("secrets", {}).items()}
    hostnames = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, sorted(config["services"], key=len, reverse=True)))
                           + r")(?=:)")
    ours = {name: service for name, service in config["services"].items()
            if service.get("build", {}).get("dockerfile") == MLPOWER_DOCKERFILE}
    local = {}
    for name in _order(ours):
        service = ours[name]
        paths: dict[str, str] = {}
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                paths[volume["target"]] = volume["source"]
            else:  # a named volume becomes a folder shared by the services that mount it
                folder = workdir / "volumes" / volume["source"]
                folder.mkdir(parents=True, exist_ok=True)
                paths[volume["target"]] = str(folder)
        for secret in service.get("secrets", []):
            path = workdir / "secrets" / secret["source"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secret_values[secret["source"]], encoding="utf-8")
            paths[secret.get("target") or f"/run/secrets/{secret['source']}"] = str(path)

        def remap(value: str, paths: dict[str, str] = paths) -> str:
            for target, source in paths.items():
                if value == target or value.startswith(target + "/"):
                    return source + value[len(target):]
            return hostnames.sub("127.0.0.1", value)

        env = {key: remap(str(value)) for key, value in (service.get("environment") or {}).items()}
        env.update(overrides or {})
        test = service.get("healthcheck", {}).get("test", [])
        urls = re.findall(r"http://127\.0\.0\.1:\d+/healthz", " ".join(test))
        local[name] = LocalService(name, ["mlpower", *service["command"]], env, urls[0] if urls else None,
                                   [dep for dep in service.get("depends_on", {}) if dep in ours])
    return local
