"""deploy/sut-agent: the agent on a SUT machine outside the lab, as one container under systemd.

The example settings are ones the agent really reads, with their values accepted; the unit runs
the slim image's agent in bus mode, unprivileged, with the broker URL as a file only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mlpower.settings import load_settings
from mlpower.sut_agent.settings import Settings

from .conftest import DEPLOY

FOLDER = DEPLOY / "sut-agent"


def example_env() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (FOLDER / "mlpower-agent.env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return {name: value for name, value in pairs}


def test_the_example_settings_are_the_agents_and_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = example_env()
    known = {field.validation_alias for field in Settings.model_fields.values()} | {"AMQP_URL_FILE"}
    assert set(env) <= known, set(env) - known
    assert "AMQP_URL" not in env and not any("password" in value.lower() for value in env.values())
    url_file = tmp_path / "amqp_url"
    url_file.write_text("amqp://agent:s3cret-value@192.0.2.1:5672/%2F")
    monkeypatch.delenv("AMQP_URL", raising=False)
    for name, value in {**env, "AMQP_URL_FILE": str(url_file), "MLPOWER_RESULTS_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(Settings)
    assert settings.server == "203.0.113.10:4950" and settings.sut == "gpu-b" and settings.lab == "lab1"
    assert settings.amqp_url == "amqp://agent:s3cret-value@192.0.2.1:5672/%2F"


def test_the_unit_runs_the_slim_agent_unprivileged_with_the_url_as_a_file() -> None:
    unit = (FOLDER / "mlpower-agent.service").read_text()
    exec_start = re.search(r"^ExecStart=(.+?)(?<!\\)$", unit, re.M | re.S)
    assert exec_start is not None
    command = exec_start.group(1).replace("\\\n", " ")
    assert command.rstrip().endswith("${MLPOWER_IMAGE} agent --bus")
    assert re.search(r"^Environment=MLPOWER_IMAGE=\S+/mlpower-slim:(?!latest)\S+$", unit, re.M)
    for flag in ("--read-only", "--cap-drop ALL", "--security-opt no-new-privileges",
                 "-e AMQP_URL_FILE=/run/secrets/amqp_url", "/etc/mlpower/amqp_url:/run/secrets/amqp_url:ro"):
        assert flag in command, flag
    assert "--privileged" not in command and "AMQP_URL=" not in command.replace("AMQP_URL_FILE=", "")
