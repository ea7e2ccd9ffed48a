"""Start, watch and stop the lab's processes; their PIDs live in a state file so that
``mlpower lab down`` in another shell can stop what ``mlpower lab up`` started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mlpower.lab.errors import LabError

STATE_FILE = "lab.json"
INHERITED_CREDENTIALS = ("AMQP_URL", "AMQP_URL_FILE", "MLPOWER_API_TOKEN", "MLPOWER_API_TOKEN_FILE",
                         "RABBITMQ_PASSWORD")
"""Not passed on from the shell that runs ``lab up`` (its AMQP_URL is the broker's administrator):
each service gets the lab's own credentials, from files, through its compose environment."""


@dataclass(frozen=True)
class Started:
    name: str
    pid: int
    log: str
    health_url: str | None


def mlpower_argv(argv: list[str]) -> list[str]:
    """Run ``mlpower ...`` with this interpreter, so the lab uses the installation it was started from."""
    return [sys.executable, "-m", "mlpower", *argv[1:]] if argv and argv[0] == "mlpower" else argv


def start(name: str, argv: list[str], env: dict[str, str], logs: Path, health_url: str | None) -> Started:
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as log:
        inherited = {key: value for key, value in os.environ.items() if key not in INHERITED_CREDENTIALS}
        process = subprocess.Popen(mlpower_argv(argv), env={**inherited, **env}, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    return Started(name, process.pid, str(log_path), health_url)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited != pid  # our child: reaped now if it had exited
    except ChildProcessError:
        pass  # not our child (another `mlpower lab` command started it): ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_healthy(started: Started, timeout_s: float = 60.0) -> None:
    if started.health_url is None:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if healthy(started.health_url):
            return
        if not alive(started.pid):
            raise LabError(f"{started.name} exited during start-up; see {started.log}:\n{tail(Path(started.log))}")
        time.sleep(0.2)
    raise LabError(f"{started.name} not healthy at {started.health_url} after {timeout_s:.0f} s; see {started.log}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(pid: int, timeout_s: float = 15.0) -> None:
    """SIGTERM the process group (services stop cleanly on it), SIGKILL what is left after the timeout."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.1)


def save_state(workdir: Path, started: list[Started]) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / STATE_FILE).write_text(json.dumps([s.__dict__ for s in started], indent=2), encoding="utf-8")


def load_state(workdir: Path) -> list[Started]:
    path = workdir / STATE_FILE
    if not path.exists():
        return []
    return [Started(**item) for item in json.loads(path.read_text(encoding="utf-8"))]


def clear_state(workdir: Path) -> None:
    (workdir / STATE_FILE).unlink(missing_ok=True)
