"""A Docker engine and the lab's images for the container tests.

``docker_engine`` (session): the engine that answers already, or a dockerd that
``scripts/docker_engine.sh`` starts (installing Debian's docker.io when missing) and stops again
when the session ends. The whole session holds ``/tmp/mlpower-docker.lock`` (several engineers
share one machine), unless a process this one descends from holds it already (``flock
/tmp/mlpower-docker.lock make test``).

``lab_images`` (session): the official images the lab uses, pulled or built as stand-ins by
``scripts/build_standin_images.sh``, and the mlpower image built from ``deploy/Dockerfile`` under
``scripts/image_ref.sh``'s name.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlpower.testing import wait_for

from .conftest import ROOT

LOCK_PATH = Path("/tmp/mlpower-docker.lock")
LOCK_WAIT_S = 1800.0
ENGINE_SCRIPT = ROOT / "scripts" / "docker_engine.sh"
STANDINS_SCRIPT = ROOT / "scripts" / "build_standin_images.sh"


@dataclass(frozen=True)
class DockerEngine:
    env: dict[str, str]  # os.environ plus DOCKER_HOST where the engine needs it
    started_here: bool

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result


@dataclass(frozen=True)
class LabImages:
    mlpower: str  # the image built from deploy/Dockerfile
    slim: str  # its slim target (the simulator and the SUT agent)
    standins: dict[str, str]  # official name -> what the stand-in label says, for those built here
    grafana: str | None  # the Grafana image when it is on this engine, else None


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def _holders(path: Path) -> set[int]:
    """Pids holding a flock on ``path`` (from /proc/locks)."""
    inode = path.stat().st_ino
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" not in fields and len(fields) > 5 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
            holders.add(int(fields[4]))
    return holders


@pytest.fixture(scope="session")
def docker_lock() -> Iterator[None]:
    LOCK_PATH.touch(exist_ok=True)
    with LOCK_PATH.open("a") as handle:
        def locked() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return bool(_holders(LOCK_PATH) & _ancestors())  # our caller holds it for us (flock ... make test)

        try:
            wait_for(locked, LOCK_WAIT_S, what=str(LOCK_PATH), poll_s=2)
        except AssertionError:
            pytest.fail(f"{LOCK_PATH} held by pid(s) {sorted(_holders(LOCK_PATH))} for {LOCK_WAIT_S:.0f} s")
        yield


@pytest.fixture(scope="session")
def docker_engine(docker_lock: None) -> Iterator[DockerEngine]:
    result = subprocess.run(["bash", str(ENGINE_SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"no Docker engine: scripts/docker_engine.sh start failed:\n{result.stderr[-3000:]}")
    exports = dict(re.findall(r"^export (\w+)=(.*)$", result.stdout, re.M))
    env = {**os.environ, **{k: v for k, v in exports.items() if k == "DOCKER_HOST"}}
    engine = DockerEngine(env, exports.get("MLPOWER_DOCKER_STARTED") == "1")
    try:
        yield engine
    finally:
        if engine.started_here:
            subprocess.run(["bash", str(ENGINE_SCRIPT), "stop"], capture_output=True, text=True, timeout=120)


def image_ref(name: str = "mlpower") -> str:
    return subprocess.run([str(ROOT / "scripts" / "image_ref.sh"), name], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def _label(engine: DockerEngine, image: str) -> str:
    result = engine.run("image", "inspect", "--format", '{{ index .Config.Labels "org.mlpower.standin" }}', image,
                        check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def _standins(engine: DockerEngine, *images: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["bash", str(STANDINS_SCRIPT), *images], env=engine.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen[str]) -> None:
    output, _ = process.communicate(timeout=1200)
    if process.returncode != 0:
        pytest.fail(f"scripts/build_standin_images.sh {' '.join(process.args[2:])} failed:\n{output[-4000:]}")


@pytest.fixture(scope="session")
def lab_images(docker_engine: DockerEngine) -> LabImages:
    # The python base first (the mlpower images need it); the broker and Prometheus are built while
    # the mlpower images are (on a machine without any image, this saves about a minute).
    _finish(_standins(docker_engine, "python"))
    others = _standins(docker_engine, "rabbitmq", "prometheus")
    try:
        reference, slim = image_ref("mlpower"), image_ref("mlpower-slim")
        for image, target in ((reference, []), (slim, ["--target", "slim"])):
            docker_engine.run("build", "--network", "host", "-q", *target, "-f", "deploy/Dockerfile", "-t", image,
                              str(ROOT), timeout=1200)
            # earlier test builds of uncommitted trees: untag them, keeping their layers as build cache
            repository = image.rsplit(":", 1)[0]
            tags = docker_engine.run("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repository).stdout.split()
            stale = [tag for tag in tags if "-dirty-" in tag and tag != image]
            if stale:
                docker_engine.run("rmi", "--no-prune", *stale, check=False)
    finally:
        _finish(others)
    compose_text = (ROOT / "deploy" / "compose.yaml").read_text(encoding="utf-8")
    names = {name: re.search(rf"\$\{{{name}:-([^}}]+)\}}", compose_text).group(1)  # type: ignore[union-attr]
             for name in ("RABBITMQ_IMAGE", "PROMETHEUS_IMAGE", "GRAFANA_IMAGE")}
    official = ["python:3.11-slim", names["RABBITMQ_IMAGE"], names["PROMETHEUS_IMAGE"]]
    labels = {image: _label(docker_engine, image) for image in official}
    grafana = names["GRAFANA_IMAGE"]
    have_grafana = docker_engine.run("image", "inspect", grafana, check=False).returncode == 0
    if not have_grafana:
        # one short try: where Docker Hub answers, Grafana runs too
        have_grafana = docker_engine.run("pull", "-q", grafana, check=False, timeout=90).returncode == 0
    return LabImages(reference, slim, {image: label for image, label in labels.items() if label},
                     grafana if have_grafana else None)
