"""The compose lab's mlpower services as local processes: their command and environment, from
the compose file itself (`docker-compose config`, so interpolation and anchors are Compose's own).

For a system test that runs the lab without containers: service hostnames become 127.0.0.1 (each
service has its own default port, so nothing clashes), volume and secret paths become folders and
files under a work folder, and ``overrides`` replace variables outright (``AMQP_URL`` for the
test's broker, for example). ``deploy/.env.example`` ships no usable secret, so tests resolve the
file with ``env_file_with_secrets`` (the example plus random secrets, as a user fills it in)::

    env_file = env_file_with_secrets(tmp_path)
    services = local_services(deploy_tools.docker_compose, tmp_path, {"AMQP_URL": amqp_url}, env_file)
    for service in services.values():        # in dependency order
        subprocess.Popen(service.argv, env={**os.environ, **service.env})
        wait for service.health_url (None for the one-shot lab-run)
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlpower.lab import compose_local
from mlpower.lab.compose_local import LocalService, read_env_file

from .conftest import DEPLOY

COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
SECRET_VARIABLES = ("RABBITMQ_PASSWORD", "MLPOWER_API_TOKEN", "GRAFANA_ADMIN_PASSWORD")


def env_file_with_secrets(folder: Path, **values: str) -> Path:
    """deploy/.env.example with every secret set to a fresh random value (or to ``values``)."""
    chosen = {name: secrets.token_urlsafe(32) for name in SECRET_VARIABLES} | values
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name, value in chosen.items():
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
        assert count == 1, f"{name} is not defined once in .env.example"
    path = folder / "compose.env"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def compose_config(docker_compose: Path, env_file: Path) -> dict[str, Any]:
    result = subprocess.run([str(docker_compose), "-f", str(COMPOSE), "--env-file", str(env_file),
                             "config", "--format", "json"], capture_output=True, text=True, timeout=60, check=True)
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def local_services(docker_compose: Path, workdir: Path, overrides: Mapping[str, str] | None,
                   env_file: Path) -> dict[str, LocalService]:
    """The services built from deploy/Dockerfile, in dependency order, as resolved by Compose itself."""
    config = compose_config(docker_compose, env_file)
    return compose_local.local_services(config, workdir, compose_local.secret_values(config, read_env_file(env_file)),
                                        overrides)
