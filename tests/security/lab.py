"""A real lab of processes for the attack suite: ``mlpower lab up`` on the real RabbitMQ, as a user runs it.

The lab has its own name, SUT and folder, a traces folder holding a symlink to a sentinel outside
it, and a workload declaration file that also declares ``environ`` (it writes what the benchmark
process sees, ``/proc/self/environ``, into its log folder). Every HTTP answer the suite gets goes
through ``Lab.http`` and is kept for the leak search.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.ports import free_port_offset

SENTINEL = "SENTINEL-7f3a91-outside-every-data-folder"
BASE_PORTS = {"power-dev": 4950, "director": 8000, "analytics": 8001, "figures": 8002, "sim-control": 8003,
              "agent": 8004, "scpi": 10001}
HTTP_SERVICES = ("director", "analytics", "figures", "sim-control", "agent")
ENVIRON_WORKLOAD = """
[workloads.environ]
description = "writes the benchmark's own environment into its log folder (the attack suite's probe)"
command = ["sh", "-c", "cat /proc/self/environ > \\"$MLPOWER_LOADGEN_LOG_DIR/environ.bin\\""]
"""


@dataclass
class Lab:
    root: Path
    env: dict[str, str]
    lab: str
    sut: str
    port_offset: int
    answers: list[str] = field(default_factory=list)

    @property
    def ports(self) -> dict[str, int]:
        """The lab's ports, moved by MLPOWER_LAB_PORT_OFFSET clear of other labs on this machine."""
        return {name: port + self.port_offset for name, port in BASE_PORTS.items()}

    @property
    def workdir(self) -> Path:
        return self.root / "lab"

    @property
    def secrets(self) -> Path:
        return self.workdir / "secrets"

    @property
    def token(self) -> str:
        return (self.secrets / "mlpower_api_token").read_text().strip()

    @property
    def broker_password(self) -> str:
        return (self.secrets / "broker_password").read_text().strip()

    @property
    def amqp_url(self) -> str:
        """The lab's own broker account: what an attacker with bus access would hold."""
        return (self.secrets / "amqp_url").read_text().strip()

    @property
    def results(self) -> Path:
        return self.workdir / "volumes" / "results"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def sentinel(self) -> Path:
        return self.root / "outside" / "sentinel.txt"

    @property
    def marker(self) -> Path:
        """What every remote-command attempt tries to create."""
        return self.root / "PWNED"

    def pids(self) -> list[int]:
        """The lab's processes and their children."""
        state = json.loads((self.workdir / "lab.json").read_text())
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:  # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        found = {int(item["pid"]) for item in state}
        grew = True
        while grew:  # descendants: a workload runs in a session of its own, under the agent
            more = {pid for pid, parent in parents.items() if parent in found} - found
            found |= more
            grew = bool(more)
        return sorted(found)

    def url(self, service: str, path: str = "") -> str:
        assert service in HTTP_SERVICES, service
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def http(self, method: str, service: str, path: str, *, token: str | None = None,
             authorization: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if authorization is not None:
            headers["Authorization"] = authorization
        response = httpx.request(method, self.url(service, path), headers=headers, timeout=30, **kwargs)
        self.answers.append(f"{method} {service}{path} -> {response.status_code}\n"
                            + response.content.decode("utf-8", errors="replace"))
        return response

    def mlpower(self, *args: str, timeout_s: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "mlpower", *args], env={**self.env, **env}, cwd=self.root,
                              capture_output=True, text=True, timeout=timeout_s)
        self.answers.append(done.stdout + done.stderr)
        return done


def lab_environment(root: Path, amqp_url: str, unique: str, port_offset: int) -> dict[str, str]:
    """The user's shell for ``lab up``: no mlpower settings of the test run, the admin broker URL."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLPOWER_", "AMQP_"))}
    traces = root / "traces"
    env.update({
        "AMQP_URL": amqp_url, "MLPOWER_LAB": f"sec{unique}", "MLPOWER_SUT": f"sut{unique}",
        "MLPOWER_LAB_DIR": str(root / "lab"), "MLPOWER_AGENT_DURATION_S": "2", "MLPOWER_ANALYZER_SLEEP_S": "0.3",
        "MLPOWER_AGENT_WORKLOADS": str(root / "workloads.toml"), "MLPOWER_SIM_TRACES_DIR": str(traces),
        "MLPOWER_RUN_TIMEOUT_S": "240", "MLPOWER_LAB_PORT_OFFSET": str(port_offset),
    })
    return env


def prepare(root: Path) -> None:
    (root / "outside").mkdir()
    (root / "outside" / "sentinel.txt").write_text(f"t_s,power_w\n0,{SENTINEL}\n1,2\n")
    traces = root / "traces"
    traces.mkdir()
    (traces / "ok.csv").write_text("t_s,power_w\n0,100\n1,200\n")
    (traces / "link.csv").symlink_to(root / "outside" / "sentinel.txt")
    (traces / "escape").symlink_to(root / "outside")
    declarations = root / "workloads.toml"
    declarations.write_text(ENVIRON_WORKLOAD)
    declarations.chmod(0o644)


def free_offset() -> int:
    """A port offset at which none of the lab's ports is taken (other engineers' labs, stray servers)."""
    return free_port_offset(BASE_PORTS.values())
