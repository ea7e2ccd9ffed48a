"""Real processes for the fault tests: ``python -m mlpower ...`` in its own process group, a
private RabbitMQ node that a test may stop and start, and small HTTP/port helpers.

Every helper is a context manager or has an explicit stop, so a test's ``finally``/finaliser
always leaves nothing running, even when an assertion failed half-way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpower.testing import wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


# --------------------------------------------------------------------------- ports and HTTP


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(predicate: Any, timeout_s: float, what: str, every_s: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; AssertionError naming ``what`` on timeout."""
    return wait_for(predicate, timeout_s, what=what, poll_s=every_s)


def http(method: str, url: str, body: Any = None, timeout_s: float = 10.0) -> tuple[int, Any]:
    """A JSON request; returns (status, decoded body or text). HTTP errors are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


# --------------------------------------------------------------------------- mlpower processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the process and whatever it started)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def wait(self, timeout_s: float = 15.0) -> int | None:
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM the group (services stop cleanly on it), SIGKILL what is left after the timeout."""
        if self.alive():
            self.kill(signal.SIGTERM)
            if self.wait(timeout_s) is None:
                self.kill(signal.SIGKILL)
        code = self.wait(5.0)
        self.kill(signal.SIGKILL)  # stragglers of the group (a workload child, say)
        return code


def start_mlpower(name: str, args: list[str], *, env: dict[str, str], log_dir: Path,
                  ready: str | None = None, timeout_s: float = 30.0) -> Proc:
    """Start ``python -m mlpower <args>`` in a new session; wait for the regex ``ready`` in its output.

    The named groups of ``ready`` land in ``Proc.info`` (e.g. the ports a port-0 service bound).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLPOWER_")}
    full_env = {**base, "PYTHONUNBUFFERED": "1", "MLPOWER_LOG_LEVEL": "INFO", **env}
    with open(log_path, "ab") as log:
        popen = subprocess.Popen([sys.executable, "-m", "mlpower", *args], env=full_env, cwd=PROJECT_ROOT,
                                 stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    proc = Proc(name, popen, log_path)
    if ready is None:
        return proc
    pattern = re.compile(ready)

    def ready_line() -> re.Match[str] | None:
        if not proc.alive() and not pattern.search(proc.log()):
            raise AssertionError(f"{name} exited ({proc.popen.returncode}) before it was ready:\n{proc.log()[-3000:]}")
        return pattern.search(proc.log())

    try:
        found = wait_for(ready_line, timeout_s, what=f"{name} to be ready", poll_s=0.05)
    except AssertionError as exc:
        if proc.alive():
            proc.stop()
            raise AssertionError(f"{name} not ready after {timeout_s:g} s:\n{proc.log()[-3000:]}") from exc
        raise
    proc.info.update({k: v for k, v in found.groupdict().items() if v is not None})
    return proc


SIM_READY = r"listening on [^:\s]+:(?P<port>\d+)[\s\S]*control on http://[^:\s]+:(?P<control>\d+)"
DIRECTOR_READY = r"power-dev\s+[^:\s]+:(?P<powerdev>\d+)\s+HTTP API\s+http://[^:\s]+:(?P<http>\d+)"


@contextlib.contextmanager
def simulator(log_dir: Path, load: str = "constant:250") -> Iterator[Proc]:
    """``mlpower sim`` on free ports; ``info['port']`` is SCPI, ``info['control']`` the control API."""
    proc = start_mlpower("sim", ["sim", "--port", "0", "--control-port", "0", "--load", load, "--seed", "1",
                                 "--host", "127.0.0.1"], env={}, log_dir=log_dir, ready=SIM_READY)
    try:
        yield proc
    finally:
        proc.stop()


def sim_resource(sim: Proc) -> str:
    return f"TCPIP0::127.0.0.1::{sim.info['port']}::SOCKET"


def sim_fault(sim: Proc, fault: str, **body: Any) -> Any:
    status, found = http("POST", f"http://127.0.0.1:{sim.info['control']}/faults/{fault}", body)
    assert status == 200, f"simulator refused fault {fault}: {status} {found}"
    return found


def director_env(*, analyzer: str, results: Path, amqp_url: str, lab: str, sut: str = "sut",
                 interval_s: float = 0.1, page_s: float = 0.2, **extra: str) -> dict[str, str]:
    return {"AMQP_URL": amqp_url, "MLPOWER_ANALYZER": analyzer, "MLPOWER_RESULTS_DIR": str(results),
            "MLPOWER_LAB": lab, "MLPOWER_SUT": sut, "MLPOWER_SAMPLE_INTERVAL_S": str(interval_s),
            "MLPOWER_PAGE_INTERVAL_S": str(page_s), "MLPOWER_ANALYZER_SLEEP_S": "0.05",
            "MLPOWER_DIRECTOR_HOST": "127.0.0.1", "MLPOWER_POWERDEV_PORT": "0",
            "MLPOWER_DIRECTOR_HTTP_PORT": "0", **extra}


def start_director(env: dict[str, str], log_dir: Path, name: str = "director") -> Proc:
    return start_mlpower(name, ["director"], env=env, log_dir=log_dir, ready=DIRECTOR_READY)


def director_url(director: Proc, path: str) -> str:
    return f"http://127.0.0.1:{director.info['http']}{path}"


def start_agent(powerdev_port: int, out: Path, log_dir: Path, *, duration_s: float = 2.0, label: str = "",
                name: str = "agent", env: dict[str, str] | None = None) -> Proc:
    """``mlpower agent`` in power-dev client mode with the built-in offline LoadGen workload."""
    args = ["agent", "--server", f"127.0.0.1:{powerdev_port}", "--workload", "builtin:offline",
            "--duration-s", str(duration_s), "--out", str(out), "--allow-clock-offset"]
    if label:
        args += ["--label", label]
    agent_env = {"MLPOWER_AGENT_REPLY_TIMEOUT_S": "30", "MLPOWER_AGENT_HTTP_PORT": "0", **(env or {})}
    return start_mlpower(name, args, env=agent_env, log_dir=log_dir)


# --------------------------------------------------------------------------- a private RabbitMQ node


class Broker:
    """A RabbitMQ node of its own (own port, own data folder) that a test may stop and start.

    Stopping the lab's shared broker would break every other test and service using it at the
    time; a private node is the same server software, restarted the same way
    (``rabbitmqctl stop_app`` / ``start_app``), with nobody else on it.
    """

    def __init__(self, name: str) -> None:
        self.node = f"{name}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        # not under pytest's tmp_path: that is private to root, and the node runs as the rabbitmq user
        self.workdir = Path(tempfile.mkdtemp(prefix=f"mlpower-{name}-"))
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> str | None:
        """None when a private node can be started here, else why not."""
        if shutil.which("rabbitmq-server") is None or shutil.which("rabbitmqctl") is None:
            return "rabbitmq-server is not installed"
        if os.geteuid() != 0:
            return "starting a RabbitMQ node needs root (it drops to the rabbitmq user)"
        return None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "RABBITMQ_NODENAME": self.node, "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq.conf"),
                "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"), "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(self.workdir / "node.pid")}

    def launch(self, timeout_s: float = 60.0) -> Broker:
        (self.workdir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n", encoding="utf-8")
        (self.workdir / "enabled_plugins").write_text("[].\n", encoding="utf-8")
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.workdir)], check=True)
        with open(self.workdir / "server.out", "ab") as out:
            self._process = subprocess.Popen(["rabbitmq-server"], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.wait_up(timeout_s)
        return self

    def wait_up(self, timeout_s: float = 30.0) -> None:
        def up() -> bool:
            if self._process is not None and self._process.poll() is not None:
                raise AssertionError(f"RabbitMQ node {self.node} exited:\n{self._tail()}")
            return port_answers(self.port)

        wait_until(up, timeout_s, f"RabbitMQ node {self.node} on port {self.port}", every_s=0.1)

    def _ctl(self, *args: str, timeout_s: float = 60.0) -> None:
        result = subprocess.run(["rabbitmqctl", "-n", self.node, *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout_s, check=False)
        if result.returncode != 0:
            raise AssertionError(f"rabbitmqctl {' '.join(args)} failed: {result.stdout}{result.stderr}")

    def stop_app(self) -> None:
        """The broker goes away: every connection is closed and the AMQP port stops answering."""
        self._ctl("stop_app")
        wait_until(lambda: not port_answers(self.port), 10, "the AMQP port to close")

    def start_app(self, timeout_s: float = 30.0) -> None:
        self._ctl("start_app")
        self.wait_up(timeout_s)

    def shutdown(self) -> None:
        """Stop the node for good (always called from a finaliser)."""
        if self._process is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            return
        with contextlib.suppress(Exception):
            self._ctl("stop", timeout_s=30)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=15)
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        self._process = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _tail(self) -> str:
        try:
            return (self.workdir / "server.out").read_text(errors="replace")[-3000:]
        except OSError:
            return ""


# --------------------------------------------------------------------------- crashes

TRACEBACK = "Traceback (most recent call last)"


LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ (?P<logger>[\w.]+):")
HANDLED_BY = ("pika",)  # pika logs the connection errors it raises (and mlpower handles) with their stack


def crashes_in(proc: Proc) -> list[str]:
    """Unexpected exceptions in a process's output: each traceback's last line.

    A traceback under a log record of pika's own loggers is pika reporting an error it then
    raises to mlpower, which handles it (reconnects); every other traceback counts.
    """
    found = []
    lines = proc.log().splitlines()
    logger = ""
    for index, line in enumerate(lines):
        record = LOG_RECORD.match(line)
        if record:
            logger = record.group("logger")
        elif line.startswith(("Exception in thread", "Exception ignored")):
            logger = ""  # an exception nobody caught, printed by the interpreter
        if TRACEBACK in line and not logger.startswith(HANDLED_BY):
            tail = next((later for later in lines[index + 1:] if later and not later.startswith((" ", "\t"))), "?")
            found.append(f"{proc.name}: {tail.strip()}")
    return found


def check_no_crash(*procs: Proc) -> None:
    """Record every traceback of these processes in the ledger and fail the test if there was one."""
    from tests.reliability.ledger import LEDGER

    found = [crash for proc in procs for crash in crashes_in(proc)]
    for crash in found:
        LEDGER.crash(crash)
    assert not found, "unexpected exceptions:\n" + "\n".join(found)


# --------------------------------------------------------------------------- process trees


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...); None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> str | None:
    """When ``pid`` started (clock ticks after boot, /proc/<pid>/stat field 22): with the pid, it names
    one process, where the pid alone may be reused by another one once that process has ended."""
    fields = _stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def pid_alive(pid: int, started: str | None = None) -> bool:
    """Running (a zombie has ended: it only waits for its parent to read its status); with
    ``started`` (``start_ticks``), only the process that started then counts."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z" and (started is None or start_ticks(pid) == started)


def descendants(roots: list[int] | set[int]) -> set[int]:
    """The live processes below ``roots`` (children, theirs, ...), read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def snapshot(pids: set[int]) -> dict[int, str]:
    """PID -> command line, to tell a process seen earlier from a later one given the same PID."""
    return {pid: command_line(pid) for pid in pids}


def left_alive(seen: dict[int, str]) -> list[str]:
    """The processes of a ``snapshot`` still running, each as 'PID command line'."""
    return [f"{pid} {line}" for pid, line in sorted(seen.items()) if pid_alive(pid) and command_line(pid) == line]
