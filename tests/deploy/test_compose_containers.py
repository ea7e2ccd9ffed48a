"""The compose lab in real containers: deploy/Dockerfile built, every service that can run here
started with ``docker compose up --wait``, one measurement through ``lab-run`` to an analyzed run
with rebuilt figures, the run tree on the results volume, Prometheus in its container scraping
every mlpower container, and ``down -v`` at the end whatever happens.

Where no engine runs, ``docker_lab.docker_engine`` starts Debian's dockerd (and stops it after);
where Docker Hub is out of reach, ``scripts/build_standin_images.sh`` builds stand-ins of the
official images from Debian packages. Grafana has none: its container does not start here (the
test says so with a warning) and its provisioning and dashboard files are checked instead.

The compose file is used as it is; an override only moves published ports to free ones on
127.0.0.1 (this machine's own RabbitMQ and the other tests hold the defaults). The secrets are
random, in a temporary env file.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import yaml
from mlpower import compose_secrets
from mlpower.testing import wait_for

from .compose_lab import env_file_with_secrets
from .conftest import DEPLOY, ROOT, DeployTools
from .docker_lab import DockerEngine, LabImages, docker_engine, docker_lock, lab_images  # noqa: F401 - fixtures

# The first test also pays for the session's set-up: on a machine without images that means
# debootstrap, the stand-ins and both mlpower images (about 4 minutes here), so the suite's
# 300 s default is too short for it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

COMPOSE = DEPLOY / "compose.yaml"
MLPOWER_SERVICES = ("analyzer-sim", "director", "sut-agent", "analytics", "figures")
LONG_RUNNING = ("rabbitmq", *MLPOWER_SERVICES, "prometheus")
# host ports: only what the test reads, on free loopback ports; nothing on the defaults
PUBLISHED = {"director": 8000, "analytics": 8001, "figures": 8002, "prometheus": 9090}
SCRAPE_JOBS = {"prometheus", "mlpower-director", "mlpower-analytics", "mlpower-figures", "mlpower-analyzer-sim",
               "mlpower-sut-agent", "rabbitmq"}
RUN_TREE_FILES = ("power/server.json", "power/server.log", "power/ptd_logs.txt", "ranging/spl.txt",
                  "ranging/mlperf_log_detail.txt", "run_1/spl.txt", "run_1/mlperf_log_detail.txt",
                  "run_1/mlperf_log_summary.txt", "samples.parquet", "documents.jsonl")


@dataclass
class ComposeLab:
    tools: DeployTools
    engine: DockerEngine
    project: str
    files: list[Path]
    env_file: Path
    timings: dict[str, float]

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.tools.docker_compose), "-p", self.project, "--env-file", str(self.env_file)]
        for file in self.files:
            command += ["-f", str(file)]
        result = subprocess.run([*command, *args], env=self.engine.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{self.logs()}")
        return result

    def logs(self) -> str:
        result = subprocess.run([str(self.tools.docker_compose), "-p", self.project, "--env-file", str(self.env_file),
                                 *[arg for file in self.files for arg in ("-f", str(file))], "logs", "--tail", "30",
                                 "--no-color"], env=self.engine.env, capture_output=True, text=True, timeout=60)
        return result.stdout[-6000:]

    def url(self, service: str) -> str:
        address = self.compose("port", service, str(PUBLISHED[service])).stdout.strip().splitlines()[0]
        return f"http://{address}"


def _override(folder: Path, with_grafana: bool) -> Path:
    services: dict[str, Any] = {}
    for name in ("rabbitmq", "analyzer-sim", "sut-agent", *(("grafana",) if with_grafana else ())):
        services[name] = {"ports": "RESET"}
    for name, port in PUBLISHED.items():
        services[name] = {"ports": [f"127.0.0.1::{port}"]}
    text = yaml.safe_dump({"services": services}, sort_keys=False)
    # compose's merge tags: replace the file's port lists instead of adding to them
    text = text.replace("ports: RESET", "ports: !reset []")
    text = re.sub(r"ports:\n(\s+- )", r"ports: !override\n\1", text)
    path = folder / "compose.override.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def compose_lab(deploy_tools: DeployTools, docker_engine: DockerEngine, lab_images: LabImages,  # noqa: F811
                tmp_path: Path) -> Iterator[ComposeLab]:
    started = time.monotonic()
    env_file = env_file_with_secrets(tmp_path)
    with env_file.open("a", encoding="utf-8") as extra:
        # a short demo measurement: 5 s LoadGen runs, 1 s director pauses (non-compliant, as the demo)
        extra.write(f"\nMLPOWER_IMAGE={lab_images.mlpower}\nMLPOWER_SLIM_IMAGE={lab_images.slim}\n"
                    "MLPOWER_AGENT_DURATION_S=5\nMLPOWER_ANALYZER_SLEEP_S=1\nMLPOWER_SUT=sut1\nMLPOWER_LAB=lab\n")
        # the broker's users, as a user makes them before `up` (python -m mlpower.compose_secrets)
        extra.write(f"MLPOWER_SECRETS_DIR={tmp_path / 'secrets'}\n")
    compose_secrets.main(["--env-file", str(env_file), "--out", str(tmp_path / "secrets")])
    lab = ComposeLab(deploy_tools, docker_engine, f"mlpowertest{secrets.token_hex(4)}",
                     [COMPOSE, _override(tmp_path, lab_images.grafana is not None)], env_file, {})
    try:
        yield lab
    finally:
        down = lab.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=180, check=False)
        left = docker_engine.run("ps", "-aq", "--filter", f"label=com.docker.compose.project={lab.project}",
                                 check=False).stdout.split()
        volumes = docker_engine.run("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={lab.project}",
                                    check=False).stdout.split()
        env_file.unlink(missing_ok=True)  # the secrets do not outlive the test
        shutil.rmtree(tmp_path / "secrets", ignore_errors=True)
        lab.timings["total_s"] = time.monotonic() - started
        print(f"compose lab timings: {json.dumps({k: round(v, 1) for k, v in lab.timings.items()})}")
        assert down.returncode == 0 and not left and not volumes, f"down -v left {left} {volumes}: {down.stderr}"


def _check_grafana_files() -> None:
    """What Grafana would load: the datasource, the dashboard provider and the dashboard it points at."""
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    mounts = {volume.split(":")[1]: (DEPLOY / volume.split(":")[0]).resolve()
              for volume in compose["services"]["grafana"]["volumes"] if volume.startswith("./")}
    provisioning = mounts["/etc/grafana/provisioning"]
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "mlpower.yml").read_text(encoding="utf-8"))
    (provider,) = providers["providers"]
    folder = provider["options"]["path"]
    assert folder in mounts, f"the dashboard provider reads {folder}, which compose does not mount"
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    dashboard = json.loads((mounts[folder] / Path(home).name).read_text(encoding="utf-8"))
    # panels name the dashboard's datasource variable, whose default is the provisioned datasource
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    default = variables["datasource"]["current"]["value"]
    uids = {panel.get("datasource", {}).get("uid") for panel in dashboard["panels"] if panel.get("datasource")}
    assert uids == {"${datasource}"} and default == source["uid"], (uids, default)
    assert home.startswith(folder + "/")


def _broker_passwords(lab: ComposeLab) -> dict[str, str]:
    """Every broker password of the lab (the services' URL files and the administrator's), by user."""
    folder = lab.env_file.parent / "secrets"
    found = {}
    for path in folder.glob("amqp-url-*"):
        url = urlsplit(path.read_text(encoding="utf-8"))
        found[unquote(url.username or "")] = unquote(url.password or "")
    found["admin"] = dict(re.findall(r"^(\w+)=(.*)$", lab.env_file.read_text(encoding="utf-8"), re.M))[
        "RABBITMQ_PASSWORD"]
    assert len(found) == 7 and all(found.values()), sorted(found)
    return found


def _check_broker_accounts(lab: ComposeLab) -> None:
    """No broker password in any container's environment or the logs, and every service on the
    broker as its own user (none as the administrator)."""
    passwords = _broker_passwords(lab)
    project = f"label=com.docker.compose.project={lab.project}"
    containers = lab.engine.run("ps", "-aq", "--filter", project).stdout.split()
    assert containers
    inspected = json.loads(lab.engine.run("inspect", *containers).stdout)
    for container in inspected:
        environment = "\n".join(container["Config"]["Env"] or [])
        leaked = [user for user, password in passwords.items() if password in environment]
        assert not leaked, f"{container['Name']}: the password of {leaked} is in its environment"
        assert "amqp://" not in environment, container["Name"]
    logs = lab.logs()
    assert not [user for user, password in passwords.items() if password in logs]
    expected = {f"mlpower-lab-{account}" for account in ("director-sut1", "sut-agent-sut1", "analytics", "figures",
                                                        "analyzer-sim")}
    users: set[str] = set()

    def all_connected() -> bool:
        nonlocal users
        listed = lab.compose("exec", "-T", "rabbitmq", "rabbitmqctl", "-q", "list_connections", "user", timeout=60)
        users = {line.strip() for line in listed.stdout.splitlines() if line.strip() and line.strip() != "user"}
        return users >= expected

    with contextlib.suppress(AssertionError):  # the assertion below names who is connected
        wait_for(all_connected, 60, what="every service connected as its own user", poll_s=1)
    assert users == expected, f"connected as {sorted(users)}, expected {sorted(expected)}"


def test_the_compose_lab_runs_a_measurement_in_containers(compose_lab: ComposeLab, lab_images: LabImages) -> None:  # noqa: F811
    lab, clock = compose_lab, time.monotonic()
    services = [*LONG_RUNNING, *(("grafana",) if lab_images.grafana else ())]
    if lab_images.grafana is None:
        warnings.warn("grafana/grafana cannot be pulled here and has no Debian package: its container is not "
                      "started; its provisioning and dashboard files are checked instead", stacklevel=1)
        _check_grafana_files()
    lab.compose("up", "--wait", "--wait-timeout", "240", "--no-build", *services, timeout=300)
    lab.timings["up_s"] = time.monotonic() - clock

    states: dict[str, dict[str, Any]] = {}
    for line in lab.compose("ps", "-a", "--format", "json").stdout.splitlines():
        for row in json.loads(line) if line.startswith("[") else [json.loads(line)]:
            states[row["Service"]] = row
    assert states["check-secrets"]["State"] == "exited" and states["check-secrets"]["ExitCode"] == 0
    for name in services:
        assert states[name]["State"] == "running", (name, states[name]["Status"])
        if name != "grafana":
            assert states[name]["Health"] == "healthy", (name, states[name]["Status"])

    _check_broker_accounts(lab)

    # one measurement, started by compose's own one-shot service
    clock = time.monotonic()
    run = lab.compose("run", "--rm", "--no-deps", "lab-run", timeout=400, check=False)
    lab.timings["lab_run_s"] = time.monotonic() - clock
    output = run.stdout + run.stderr
    # the console wraps long lines at spaces: read it as one line
    match = re.search(r"run (\S+) started via \S+; results in (/results/\S+)", " ".join(output.split()))
    assert match, f"lab-run said:\n{output[-4000:]}\n{lab.logs()}"
    run_id, run_dir = match.groups()
    assert run_dir == f"/results/{run_id}", run_dir
    # a demo-length run is non-compliant: lab-run judges it FAIL and says so with exit status 1
    assert run.returncode == 1 and "verdict FAIL" in output, output[-4000:]
    assert "figures rebuilt:" in output
    # the demo's live line, moving during the run, and where the run's files are
    assert re.search(r"testing\s+load: .*?\b[1-9]\d* samples, \d+ flagged", output), output[-4000:]
    assert f"compliance report: {run_dir}/compliance.json" in output, output[-4000:]
    assert re.search(rf"/runs/{re.escape(run_id)}/figures/trace\.png", output), output[-4000:]

    with httpx.Client(timeout=10) as http:
        analyzed = http.get(f"{lab.url('analytics')}/runs/{run_id}").json()
        assert analyzed["run_id"] == run_id and analyzed["summary"]["avg_power_w"] > 0
        director = http.get(f"{lab.url('director')}/runs/{run_id}").json()
        # ended without a failure reason, its files served
        assert director["run_id"] == run_id and not director["reason"], director
        assert {"power/server.json", "run_1/spl.txt"} <= set(director["files"]), director
        figures = http.get(f"{lab.url('figures')}/figures").json()
        assert figures, "the figures service lists no figure"

        # Prometheus, in its container, scrapes every mlpower container (and RabbitMQ, and itself)
        prometheus, jobs = lab.url("prometheus"), {}

        def all_up() -> bool:
            nonlocal jobs
            up = http.get(f"{prometheus}/api/v1/query", params={"query": "up"}).json()["data"]["result"]
            jobs = {series["metric"]["job"]: series["value"][1] for series in up}
            return set(jobs) == SCRAPE_JOBS and set(jobs.values()) == {"1"}

        with contextlib.suppress(AssertionError):  # the assertion below names the jobs that are not up
            wait_for(all_up, 60, what="every scrape job up", poll_s=1)
        assert set(jobs) == SCRAPE_JOBS and all(value == "1" for value in jobs.values()), jobs
        samples = {"query": "mlpower_analyzer_samples_total{service='director'}"}
        power = http.get(f"{prometheus}/api/v1/query", params=samples).json()["data"]["result"]
        assert power and float(power[0]["value"][1]) > 0, power

    # the run tree is on the results volume (read through a fresh container of the same image)
    listing = lab.engine.run("run", "--rm", "-v", f"{lab.project}_results:/results:ro", "--entrypoint", "find",
                             lab_images.mlpower, "/results", "-type", "f").stdout.split()
    for name in RUN_TREE_FILES:
        assert f"{run_dir}/{name}" in listing, f"{name} not in the run tree: {sorted(listing)[:80]}"
    assert any(path.startswith("/results/figures/") and path.endswith(".png") for path in listing)
    assert any(run_id in path and path.startswith("/results/figures/") for path in listing), \
        "no figure of the run itself"


def test_pyvisa_in_the_image_opens_a_usb_analyzer_up_to_no_device(docker_engine: DockerEngine,  # noqa: F811
                                                                  lab_images: LabImages) -> None:  # noqa: F811
    """A USBTMC resource gets as far as looking for the device: PyUSB and libusb are in the image."""
    probe = ("import pyvisa\n"
             "rm = pyvisa.ResourceManager('@py')\n"
             "try:\n"
             "    rm.open_resource('USB0::0x0B21::0x0025::C2PH13047V::INSTR')\n"
             "except Exception as exc:\n"
             "    print(f'{type(exc).__name__}: {exc}')\n"
             "else:\n"
             "    print('opened')\n")
    result = docker_engine.run("run", "--rm", "--network", "none", "--entrypoint", "python", lab_images.mlpower,
                               "-c", probe)
    slim = docker_engine.run("run", "--rm", "--network", "none", "--entrypoint", "python", lab_images.slim,
                             "-c", probe)
    assert slim.stdout == result.stdout, "the slim image opens USB analyzers the same way"
    text = result.stdout.strip()
    print(f"USB resource in the image: {text}")
    assert re.search(r"no device found|no such device", text, re.I), text
    assert "pyusb" not in text.lower() and "no backend" not in text.lower(), text


@pytest.mark.parametrize("which", ["mlpower", "slim"])
def test_the_image_user_has_the_device_groups(docker_engine: DockerEngine, lab_images: LabImages,  # noqa: F811
                                              which: str) -> None:
    image = getattr(lab_images, which)
    ident = docker_engine.run("run", "--rm", "--network", "none", "--entrypoint", "id", image).stdout
    assert re.match(r"uid=10001\(mlpower\) gid=10001\(mlpower\)", ident), ident
    assert "(plugdev)" in ident and "(dialout)" in ident, ident
    volumes = docker_engine.run("image", "inspect", "--format", "{{json .Config.Volumes}}", image).stdout
    assert volumes.strip() in ("null", "{}"), volumes


def test_the_slim_image_has_no_analysis_stack_and_runs_the_simulator_and_agent(
        docker_engine: DockerEngine, lab_images: LabImages) -> None:  # noqa: F811
    probe = ("import importlib.util as u\n"
             "print(sorted(m for m in ('pyarrow', 'polars', 'matplotlib', 'PIL', 'setuptools') if u.find_spec(m)))\n"
             "import mlpower.analyzer_sim.cli, mlpower.sut_agent.cli, mlpower.sut_agent.loadgen_runner\n"
             "import pyvisa_py, usb\n"
             "print('imports ok')\n")
    result = docker_engine.run("run", "--rm", "--network", "none", "--entrypoint", "python", lab_images.slim, "-c",
                               probe).stdout.split("\n")
    assert result[:2] == ["[]", "imports ok"], result
    sizes = {image: int(docker_engine.run("image", "inspect", "--format", "{{.Size}}", image).stdout)
             for image in (lab_images.mlpower, lab_images.slim)}
    print(f"image sizes: {', '.join(f'{name} {size / 1e6:.0f} MB' for name, size in sizes.items())}")
    assert sizes[lab_images.slim] < sizes[lab_images.mlpower] - 300e6


def test_a_code_edit_reuses_the_dependency_layer(docker_engine: DockerEngine, lab_images: LabImages,  # noqa: F811
                                                 tmp_path: Path) -> None:
    """The locked dependencies are one layer of the build stage; an edit to the code rebuilds what follows it only."""
    context = tmp_path / "context"
    for name in ("pyproject.toml", "README.md", "shared", "services", "deploy/Dockerfile", "deploy/requirements.txt",
                 ".dockerignore"):
        target = context / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, target)

    def build_stage_layers() -> list[str]:
        image = docker_engine.run("build", "--network", "host", "-q", "--target", "build", "-f", "deploy/Dockerfile",
                                  str(context), timeout=900).stdout.strip().splitlines()[-1]
        return docker_engine.run("history", "--no-trunc", "-q", image).stdout.split()[::-1]

    before = build_stage_layers()
    with (context / "services" / "lab" / "__init__.py").open("a", encoding="utf-8") as edit:
        edit.write("\n# an edit\n")
    clock = time.monotonic()
    after = build_stage_layers()
    rebuild_s = time.monotonic() - clock
    history = docker_engine.run("history", "--no-trunc", "--format", "{{.CreatedBy}}", after[-1]).stdout.splitlines()
    steps = history[::-1]
    dependency_step = next(i for i, step in enumerate(steps) if "--require-hashes" in step)
    assert after[:dependency_step + 1] == before[:dependency_step + 1], "the dependency layer was rebuilt"
    assert after[-1] != before[-1], "the edit did not reach the image"
    print(f"rebuild after a code edit: {rebuild_s:.1f} s")
