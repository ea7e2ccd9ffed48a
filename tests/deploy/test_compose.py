"""deploy/compose.yaml: valid for Compose itself and for the compose-spec JSON Schema, and a lab.

Two real validators: the official Compose v2 binary (`docker-compose config`, which needs no
engine) and the compose-spec JSON Schema that very binary embeds, read out of it and applied
with jsonschema, so both check against the same version of the specification.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from mlpower.cli import SUBCOMMANDS

from .compose_lab import SECRET_VARIABLES, env_file_with_secrets, local_services
from .conftest import DEPLOY, DeployTools

COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
CHECK_SECRETS = DEPLOY / "check-secrets.sh"
MLPOWER_SERVICES = ("analyzer-sim", "director", "sut-agent", "analytics", "figures", "lab-run")
# lab-run runs a measurement and exits; check-secrets refuses placeholder secrets and exits
ONE_SHOT = {"lab-run", "check-secrets"}
# The Settings classes each mlpower compose service reads, besides the common ServiceSettings.
SETTINGS_OF_SERVICE = {
    "analyzer-sim": "mlpower.analyzer_sim.settings",
    "director": "mlpower.director.settings",
    "sut-agent": "mlpower.sut_agent.settings",
    "analytics": "mlpower.analytics.settings",
    "figures": "mlpower.figures.settings",
    "lab-run": "mlpower.lab.settings",
}
SCHEMA_START = b'{\n  "$schema": "https://json-schema.org/draft/2020-12/schema",\n  "$id": "compose_spec.json"'


@cache
def compose_schema(binary: Path) -> dict[str, Any]:
    """The compose-spec schema embedded in the Compose binary (compose-go's schema/compose-spec.json)."""
    data = binary.read_bytes()
    start = data.find(SCHEMA_START)
    assert start >= 0 and data.find(SCHEMA_START, start + 1) < 0, "expected exactly one embedded compose-spec schema"
    # the bytes after the document are other strings of the binary, not necessarily UTF-8
    schema, _ = json.JSONDecoder().raw_decode(data[start:start + 1_000_000].decode("utf-8", errors="replace"))
    return schema


def compose_config(tools: DeployTools, path: Path, *args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tools.docker_compose), "-f", str(path), "--env-file", str(env_file),
                           "config", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def secrets_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return env_file_with_secrets(tmp_path_factory.mktemp("compose-env"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_compose_binary_accepts_the_file(deploy_tools: DeployTools, secrets_env: Path) -> None:
    result = compose_config(deploy_tools, COMPOSE, "-q", env_file=secrets_env)
    assert result.returncode == 0, result.stderr


def test_compose_file_matches_the_compose_spec_schema(deploy_tools: DeployTools, compose: dict[str, Any]) -> None:
    schema = compose_schema(deploy_tools.docker_compose)
    assert schema["title"] == "Compose Specification"
    jsonschema.Draft202012Validator(schema).validate(compose)


@pytest.mark.parametrize("mutation", [
    # a condition Compose does not know
    lambda doc: doc["services"]["director"]["depends_on"]["rabbitmq"].update(condition="service_ready"),
    # a key that is not in the specification
    lambda doc: doc["services"]["analytics"].update(health_check={"test": ["CMD", "true"]}),
], ids=["unknown-condition", "unknown-key"])
def test_both_validators_reject_a_broken_file(deploy_tools: DeployTools, compose: dict[str, Any], secrets_env: Path,
                                              tmp_path: Path, mutation: Any) -> None:
    broken = json.loads(json.dumps(compose))
    mutation(broken)
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    assert compose_config(deploy_tools, path, "-q", env_file=secrets_env).returncode != 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(compose_schema(deploy_tools.docker_compose)).validate(broken)


def test_lab_services_health_and_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"check-secrets", "rabbitmq", "prometheus", "grafana", *MLPOWER_SERVICES}
    for name, service in services.items():
        if name not in ONE_SHOT:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in services and dependency != "lab-run"
            expected = "service_completed_successfully" if dependency == "check-secrets" else "service_healthy"
            assert how == {"condition": expected}, f"{name} -> {dependency}: {how}"
    # the demo measurement starts only once everything it uses is healthy
    assert set(services["lab-run"]["depends_on"]) >= {"director", "sut-agent", "analytics", "figures"}


SLIM_SERVICES = {"analyzer-sim", "sut-agent"}  # deploy/Dockerfile's slim target: no analysis stack


def test_mlpower_services_run_deploy_dockerfile_images_and_real_subcommands(compose: dict[str, Any]) -> None:
    subcommands = {name for name, _, _ in SUBCOMMANDS}
    for name in MLPOWER_SERVICES:
        service = compose["services"][name]
        expected = {"context": "..", "dockerfile": "deploy/Dockerfile"}
        if name in SLIM_SERVICES:
            expected["target"] = "slim"
            assert service["image"].startswith("${MLPOWER_SLIM_IMAGE:-"), name
        else:
            assert service["image"].startswith("${MLPOWER_IMAGE:-"), name
        assert service["build"] == expected, name
        assert service["command"][0] in subcommands, f"{name}: {service['command']}"
        if name in SLIM_SERVICES:  # what the slim image can run
            assert service["command"][0] in ("sim", "agent"), name


def test_results_live_on_a_named_volume(compose: dict[str, Any]) -> None:
    assert "results" in compose["volumes"]
    for name in ("director", "analytics", "figures"):
        assert "results:/results" in compose["services"][name]["volumes"], name
        assert compose["services"][name]["environment"]["MLPOWER_RESULTS_DIR"] == "/results"


def _depends_on(services: dict[str, Any], name: str) -> set[str]:
    direct = set(services[name].get("depends_on", {}))
    return direct.union(*(_depends_on(services, dependency) for dependency in direct))


def test_every_service_holding_a_secret_waits_for_the_secrets_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        holds_secret = service.get("secrets") or "RABBITMQ" in json.dumps(service.get("environment", {}))
        if holds_secret and name != "check-secrets":
            assert "check-secrets" in _depends_on(services, name), name
    # it sees the three secrets, and nothing else of the lab
    check = services["check-secrets"]
    assert set(check["secrets"]) == {"mlpower_api_token", "grafana_admin_password"}
    assert not check.get("environment"), "no broker password in any container's environment"
    assert check["network_mode"] == "none" and check["user"].split(":")[0] != "0"


def test_env_example_ships_no_usable_secret_and_compose_refuses_it_as_it_is(tmp_path: Path) -> None:
    example = dict(re.findall(r"^(\w+)=(.*)$", ENV_EXAMPLE.read_text(encoding="utf-8"), re.M))
    assert {name: example[name] for name in SECRET_VARIABLES} == dict.fromkeys(SECRET_VARIABLES, "")
    assert "secrets.token_urlsafe" in ENV_EXAMPLE.read_text(encoding="utf-8")  # how to make one
    # the broker's users come from mlpower.compose_secrets, which refuses the example's empty password
    result = subprocess.run([sys.executable, "-m", "mlpower.compose_secrets", "--env-file", str(ENV_EXAMPLE),
                             "--out", str(tmp_path / "secrets")], capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "RABBITMQ_PASSWORD"})
    assert result.returncode != 0 and "RABBITMQ_PASSWORD" in result.stderr
    assert not (tmp_path / "secrets").exists()


def _check_secrets(tmp_path: Path, password: str, token: str, grafana: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "mlpower_api_token").write_text(token)
    (tmp_path / "grafana_admin_password").write_text(grafana)
    return subprocess.run(["sh", str(CHECK_SECRETS)], env={"PATH": "/usr/bin:/bin", "RABBITMQ_PASSWORD": password,
                                                          "SECRETS_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("password", "token", "grafana", "refused"), [
    ("", "t" * 40, "g" * 40, ["RABBITMQ_PASSWORD"]),
    ("change-me-broker-password", "change-me-api-token", "change-me-grafana-password",
     ["RABBITMQ_PASSWORD", "MLPOWER_API_TOKEN", "GRAFANA_ADMIN_PASSWORD"]),
    ("p" * 40, "", "CHANGEME", ["MLPOWER_API_TOKEN", "GRAFANA_ADMIN_PASSWORD"]),
    ("guest", "t" * 40, "admin", ["RABBITMQ_PASSWORD", "GRAFANA_ADMIN_PASSWORD"]),
], ids=["empty-password", "the-old-example", "empty-token-changeme", "default-credentials"])
def test_check_secrets_refuses_empty_and_placeholder_values_without_printing_them(
        tmp_path: Path, password: str, token: str, grafana: str, refused: list[str]) -> None:
    result = _check_secrets(tmp_path, password, token, grafana)
    assert result.returncode == 1
    named = re.findall(r"refused: (\w+) in deploy/.env", result.stderr)
    assert named == refused
    assert "secrets.token_urlsafe(32)" in result.stderr
    for value in (password, token, grafana):
        assert not value or value not in result.stderr + result.stdout


def test_check_secrets_lets_real_secrets_pass(tmp_path: Path) -> None:
    result = _check_secrets(tmp_path, "Zq3-9vB" * 6, "x7_Tk" * 8, "a" * 32)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "check-secrets: no empty or placeholder secret"


def test_no_credential_is_written_in_the_file() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    # every password and the broker URL's secret part come from the environment or a secret file
    for line in text.splitlines():
        if re.search(r"(PASS|PASSWORD|TOKEN)\w*\s*:", line) and "_FILE" not in line:
            assert "${" in line, f"literal credential: {line.strip()}"
    # no broker URL nor password at all: each service reads its own URL file (AMQP_URL_FILE)
    assert "amqp://" not in text and "RABBITMQ_PASSWORD" not in text and "RABBITMQ_DEFAULT_PASS" not in text
    required = set(re.findall(r"\$\{(\w+):\?", text))
    defined = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text(encoding="utf-8"), re.M))
    assert required <= defined, f".env.example lacks {required - defined}"
    assert {"MLPOWER_API_TOKEN", "GRAFANA_ADMIN_PASSWORD"} <= defined  # the secrets' sources


def test_prometheus_scrapes_every_http_service_of_the_lab(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {target for job in config["scrape_configs"] for static in job["static_configs"]
               for target in static["targets"]}
    expected = {"director:8000", "analytics:8001", "figures:8002", "analyzer-sim:8003", "sut-agent:8004",
                "rabbitmq:15692", "localhost:9090"}
    assert targets == expected
    for target in expected - {"localhost:9090"}:
        host, port = target.split(":")
        # the port each health check probes is the one Prometheus scrapes
        assert host in compose["services"]
        if host != "rabbitmq":
            probe = " ".join(compose["services"][host]["healthcheck"]["test"])
            # readiness where the service has it (broker and worker), else its health
            assert f":{port}/{'healthz' if host == 'analyzer-sim' else 'readyz'}" in probe


@pytest.mark.parametrize("service", MLPOWER_SERVICES)
def test_environment_names_are_settings_the_service_reads(compose: dict[str, Any], service: str) -> None:
    """A misspelt variable would be ignored silently (extra="ignore"): each must be a declared setting."""
    module = pytest.importorskip(SETTINGS_OF_SERVICE[service], reason="the service's settings have not landed")
    from mlpower.settings import ServiceSettings

    classes = [value for value in vars(module).values()
               if isinstance(value, type) and issubclass(value, ServiceSettings)]
    aliases = {"MLPOWER_API_TOKEN_FILE", "AMQP_URL_FILE"}  # *_FILE forms of secrets (shared/settings.py)
    for settings_class in [ServiceSettings, *classes]:
        aliases |= {field.validation_alias for field in settings_class.model_fields.values()
                    if isinstance(field.validation_alias, str)}
    environment = set(compose["services"][service]["environment"])
    assert environment - aliases == set(), f"{service} sets variables no Settings class reads"


def test_settings_module_table_names_importable_modules_or_pending_ones() -> None:
    # a typo in SETTINGS_OF_SERVICE would turn the test above into a permanent skip
    for module in SETTINGS_OF_SERVICE.values():
        package = module.rsplit(".", 1)[0]
        assert importlib.util.find_spec(package) is not None, package


def test_local_services_run_the_compose_commands_with_loopback_hosts(deploy_tools: DeployTools,
                                                                    tmp_path: Path) -> None:
    env_file = env_file_with_secrets(tmp_path, MLPOWER_API_TOKEN="a-token-for-this-test-only-0123456789")
    services = local_services(deploy_tools.docker_compose, tmp_path, {"AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/"},
                              env_file)
    order = list(services)
    assert set(order) == set(MLPOWER_SERVICES)
    for name, service in services.items():
        assert all(order.index(dependency) < order.index(name) for dependency in service.depends_on)
        assert service.env["AMQP_URL"] == "amqp://guest:guest@127.0.0.1:5672/"
        assert service.argv[0] == "mlpower"
        assert (service.health_url is None) == (name in ONE_SHOT)
        token_file = Path(service.env["MLPOWER_API_TOKEN_FILE"])
        assert token_file.read_text() == "a-token-for-this-test-only-0123456789"  # from the env file, as a secret
    director = services["director"]
    assert director.argv == ["mlpower", "director"]
    assert director.env["MLPOWER_ANALYZER"] == "TCPIP0::127.0.0.1::10001::SOCKET"
    assert director.env["MLPOWER_RESULTS_DIR"] == str(tmp_path / "volumes" / "results")
    assert director.health_url == "http://127.0.0.1:8000/readyz"
    assert services["lab-run"].env["MLPOWER_DIRECTOR_URL"] == "http://127.0.0.1:8000"
    # The image carries the public results (package data), so nothing is mounted for them.
    assert "MLPOWER_DATA_DIR" not in services["figures"].env


def test_each_service_mounts_only_its_own_broker_url_file(compose: dict[str, Any]) -> None:
    services, defined = compose["services"], compose["secrets"]
    seen = {}
    for name in MLPOWER_SERVICES:
        service = services[name]
        urls = [s for s in service["secrets"] if isinstance(s, dict) and s["source"].startswith("amqp_url_")]
        assert len(urls) == 1 and urls[0]["target"] == "amqp_url", name
        assert service["environment"]["AMQP_URL_FILE"] == "/run/secrets/amqp_url", name
        assert "AMQP_URL" not in service["environment"], name
        seen[name] = defined[urls[0]["source"]]["file"]
    assert len(set(seen.values())) == len(seen), "two services share a broker account"
    broker = services["rabbitmq"]
    assert broker["secrets"] == ["rabbitmq_definitions"] and not broker.get("environment")
    conf = next(v for v in broker["volumes"] if "conf.d" in v).split(":")[0]
    assert "load_definitions = /run/secrets/rabbitmq_definitions" in (DEPLOY / conf).read_text(encoding="utf-8")
