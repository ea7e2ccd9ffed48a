"""Workloads: the built-in LoadGen runs (a table), the SUT owner's own command (client mode), and
the workloads the owner declares for bus mode (``registry``); all launched under TZ=UTC.

A command workload writes its LoadGen logs into the folder the agent names, which it learns in
two ways (power-dev's client only has a fixed ``-L INDIR``; naming the folder per run keeps the
ranging and testing logs apart): the environment variable ``MLPOWER_LOADGEN_LOG_DIR``, and the
placeholder ``{log_dir}`` replaced in the command text. ``MLPOWER_MODE``, ``MLPOWER_DURATION_S``
(and ``MLPOWER_SCENARIO`` where one applies) tell it the mode, the asked duration and scenario.

The benchmark never gets the agent's own settings or credentials (``AMQP_URL``, the API token):
a built-in or a declared workload gets a minimal base (``BASE_ENV_NAMES``, ``TZ=UTC``) plus what
its declaration names; the owner's client-mode command gets the owner's environment without the
agent's ``AMQP_*`` and ``MLPOWER_*`` variables.
"""

from __future__ import annotations

import ctypes
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlpower.sut_agent.errors import WorkloadError, WorkloadFailed

LOG_DIR_ENV = "MLPOWER_LOADGEN_LOG_DIR"
MODE_ENV = "MLPOWER_MODE"
DURATION_ENV = "MLPOWER_DURATION_S"
SCENARIO_ENV = "MLPOWER_SCENARIO"
LOG_DIR_PLACEHOLDER = "{log_dir}"
BUILTIN_PREFIX = "builtin:"
COMPLIANT_MIN_DURATION_S = 600.0  # every scenario's minimum run length (mlperf-power-rules.md §2.5)
STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 4000
POLL_S = 0.2

BASE_ENV_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
"""What every workload gets from the agent's environment (when set), besides TZ=UTC and the run's own."""
AGENT_OWN_ENV = re.compile(r"^(AMQP_|MLPOWER_)")
"""The agent's own settings and credentials: never passed to a benchmark."""


THREAD_ENV_NAMES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Passed on to the built-ins: on a machine shared with other work, BLAS threads that outnumber the
free cores wait on each other (measured: 2 OpenBLAS threads beside 3 busy processes on 2 cores ran
the Offline built-in at 202 samples/s, 1 thread at 559), so the owner may set them."""


def base_environment(source: Mapping[str, str]) -> dict[str, str]:
    return {name: source[name] for name in BASE_ENV_NAMES if name in source}


class Workload(Protocol):
    """Something the agent can run for one phase: a command line and the environment it gets."""

    @property
    def name(self) -> str: ...

    @property
    def scenario(self) -> str | None: ...  # the scenario a request chose, told to the workload

    @property
    def params(self) -> frozenset[str]: ...  # what a request may set (WorkloadRequest's fields)

    def command(self, log_dir: Path, duration_s: float, mode: str) -> list[str] | str: ...

    def environment(self, source: Mapping[str, str]) -> dict[str, str]: ...


@dataclass(frozen=True)
class BuiltinWorkload:
    """A LoadGen scenario on the built-in network; ``device`` cuda uses the optional PyTorch variant."""

    builtin_scenario: str
    device: str = "cpu"
    params: frozenset[str] = frozenset({"duration_s"})
    scenario: str | None = None

    @property
    def name(self) -> str:
        suffix = f":{self.device}" if self.device != "cpu" else ""
        return f"{BUILTIN_PREFIX}{self.builtin_scenario}{suffix}"

    def command(self, log_dir: Path, duration_s: float, mode: str = "") -> list[str]:
        return [
            sys.executable, "-m", "mlpower.sut_agent.loadgen_runner",
            "--scenario", self.builtin_scenario, "--device", self.device,
            "--out", str(log_dir), "--duration-ms", str(max(1, round(duration_s * 1000))),
        ]

    def environment(self, source: Mapping[str, str]) -> dict[str, str]:
        # Which GPU, and how many threads the math libraries start: the machine's choice, not the request's.
        chosen = (*THREAD_ENV_NAMES, *(("CUDA_VISIBLE_DEVICES",) if self.device == "cuda" else ()))
        return {**base_environment(source), **{name: source[name] for name in chosen if name in source}}


@dataclass(frozen=True)
class CommandWorkload:
    """A shell command the SUT's owner typed (client mode), like power-dev's ``--run-workload``."""

    text: str
    scenario: str | None = None
    params: frozenset[str] = frozenset({"duration_s"})

    @property
    def name(self) -> str:
        return self.text

    def command(self, log_dir: Path, duration_s: float, mode: str = "") -> str:
        return self.text.replace(LOG_DIR_PLACEHOLDER, shlex.quote(str(log_dir)))

    def environment(self, source: Mapping[str, str]) -> dict[str, str]:
        # the owner's own shell environment (their CUDA, conda, model paths), less the agent's credentials
        return {name: value for name, value in source.items() if not AGENT_OWN_ENV.match(name)}


# The built-in workloads: ``builtin:<scenario>[:<device>]``.
BUILTIN_WORKLOADS: dict[str, BuiltinWorkload] = {
    w.name: w
    for w in (
        BuiltinWorkload("offline"),
        BuiltinWorkload("server"),
        BuiltinWorkload("singlestream"),
        BuiltinWorkload("offline", "cuda"),
        BuiltinWorkload("server", "cuda"),
        BuiltinWorkload("singlestream", "cuda"),
    )
}


def parse_workload(text: str) -> Workload:
    """Client mode's ``--workload``: a built-in, or the owner's shell command."""
    spec = text.strip()
    if not spec:
        raise WorkloadError("no workload given: use builtin:offline|server|singlestream[:cuda] or a shell command")
    if spec.startswith(BUILTIN_PREFIX):
        try:
            return BUILTIN_WORKLOADS[spec.lower()]
        except KeyError:
            raise WorkloadError(f"unknown built-in workload {spec!r}; known: {', '.join(BUILTIN_WORKLOADS)}") from None
    return CommandWorkload(spec)


def compliant_duration(duration_s: float) -> bool:
    return duration_s >= COMPLIANT_MIN_DURATION_S


def cuda_available() -> bool:
    """Whether the PyTorch GPU variant can run here (torch is an optional extra)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class WorkloadRun:
    started_utc_s: float
    finished_utc_s: float
    log_dir: Path


def workload_environment(workload: Workload, log_dir: Path, mode: str, duration_s: float,
                         source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The workload's own environment, then the run's: TZ=UTC makes LoadGen write power_begin and
    power_end in UTC (power-dev-protocol.md §6.1)."""
    env = {**workload.environment(os.environ if source is None else source), "TZ": "UTC",
           LOG_DIR_ENV: str(log_dir), MODE_ENV: mode, DURATION_ENV: f"{duration_s:g}"}
    if workload.scenario:
        env[SCENARIO_ENV] = workload.scenario
    return env


def tail(text: str, lines: int = STDERR_TAIL_LINES, chars: int = STDERR_TAIL_CHARS) -> str:
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept[-chars:]


def _stop(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """End the workload's whole process group (a shell command may have started children):
    SIGTERM, then SIGKILL what is left after ``grace_s``."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_agent(agent_pid: int) -> Callable[[], None] | None:
    """In the forked child, before exec: the kernel SIGKILLs the workload when the agent dies
    (even by SIGKILL, which no handler of the agent sees). Linux only; elsewhere None."""
    if _LIBC is None:
        return None
    libc = _LIBC

    def arm() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != agent_pid:  # the agent died before the line above: do not outlive it
            os._exit(1)

    return arm


def run_workload(
    workload: Workload,
    log_dir: Path,
    mode: str,
    duration_s: float,
    *,
    timeout_s: float | None = None,
    abort_reason: Callable[[], str | None] | None = None,
    on_start: Callable[[int], None] | None = None,
    stop_grace_s: float = 5.0,
) -> WorkloadRun:
    """Run the workload to completion; its stdout and stderr go to files in ``log_dir``.

    ``abort_reason`` is polled while it runs (e.g. "the director closed the connection"); a
    non-None answer stops the workload's process group (SIGTERM, SIGKILL after ``stop_grace_s``)
    and fails with that reason. ``on_start`` learns the workload's PID (its group's leader).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    command = workload.command(log_dir, duration_s, mode)
    stdout_path, stderr_path = log_dir / "workload_stdout.txt", log_dir / "workload_stderr.txt"
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        started = time.time()
        try:
            process = subprocess.Popen(
                command, shell=isinstance(command, str), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                env=workload_environment(workload, log_dir, mode, duration_s), start_new_session=True,
                preexec_fn=_die_with_agent(os.getpid()),
            )
        except OSError as exc:
            raise WorkloadError(f"cannot start workload {workload.name}: {exc}") from exc
        if on_start is not None:
            on_start(process.pid)
        deadline = started + timeout_s if timeout_s else None
        reason: str | None = None
        try:
            while process.poll() is None:
                if deadline is not None and time.time() > deadline:
                    reason = f"workload {workload.name} ran past its {timeout_s:g} s timeout"
                elif abort_reason is not None:
                    reason = abort_reason()
                if reason is not None:
                    _stop(process, stop_grace_s)
                    break
                time.sleep(POLL_S)
        finally:
            if process.poll() is None:  # an exception (e.g. KeyboardInterrupt) must not orphan it
                _stop(process, stop_grace_s)
        finished = time.time()
    if reason is not None:
        raise WorkloadError(reason)
    if process.returncode != 0:
        stderr_text = stderr_path.read_text(encoding="utf-8", errors="replace")
        raise WorkloadFailed(workload.name, process.returncode, tail(stderr_text))
    return WorkloadRun(started, finished, log_dir)
