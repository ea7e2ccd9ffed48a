"""Workloads: the built-in LoadGen runs (a table) and any shell command, launched under TZ=UTC.

A command workload writes its LoadGen logs into the folder the agent names, which it learns in
two ways (power-dev's client only has a fixed ``-L INDIR``; naming the folder per run keeps the
ranging and testing logs apart): the environment variable ``MLPOWER_LOADGEN_LOG_DIR``, and the
placeholder ``{log_dir}`` replaced in the command text. ``MLPOWER_MODE`` and
``MLPOWER_DURATION_S`` tell it the mode and the asked duration.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlpower.sut_agent.errors import WorkloadError, WorkloadFailed

LOG_DIR_ENV = "MLPOWER_LOADGEN_LOG_DIR"
MODE_ENV = "MLPOWER_MODE"
DURATION_ENV = "MLPOWER_DURATION_S"
LOG_DIR_PLACEHOLDER = "{log_dir}"
BUILTIN_PREFIX = "builtin:"
COMPLIANT_MIN_DURATION_S = 600.0  # every scenario's minimum run length (mlperf-power-rules.md §2.5)
STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 4000
POLL_S = 0.2


@dataclass(frozen=True)
class BuiltinWorkload:
    """A LoadGen scenario on the built-in network; ``device`` cuda uses the optional PyTorch variant."""

    scenario: str
    device: str = "cpu"

    @property
    def name(self) -> str:
        suffix = f":{self.device}" if self.device != "cpu" else ""
        return f"{BUILTIN_PREFIX}{self.scenario}{suffix}"

    def command(self, log_dir: Path, duration_s: float) -> list[str]:
        return [
            sys.executable, "-m", "mlpower.sut_agent.loadgen_runner",
            "--scenario", self.scenario, "--device", self.device,
            "--out", str(log_dir), "--duration-ms", str(max(1, round(duration_s * 1000))),
        ]


@dataclass(frozen=True)
class CommandWorkload:
    """A shell command, like power-dev's ``--run-workload``."""

    text: str

    @property
    def name(self) -> str:
        return self.text

    def command(self, log_dir: Path, duration_s: float) -> str:
        return self.text.replace(LOG_DIR_PLACEHOLDER, shlex.quote(str(log_dir)))


Workload = BuiltinWorkload | CommandWorkload

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


def workload_environment(log_dir: Path, mode: str, duration_s: float) -> dict[str, str]:
    # TZ=UTC makes LoadGen write power_begin/power_end in UTC (power-dev-protocol.md §6.1).
    return {**os.environ, "TZ": "UTC", LOG_DIR_ENV: str(log_dir), MODE_ENV: mode, DURATION_ENV: f"{duration_s:g}"}


def tail(text: str, lines: int = STDERR_TAIL_LINES, chars: int = STDERR_TAIL_CHARS) -> str:
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept[-chars:]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the workload's whole process group (a shell command may have started children)."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_workload(
    workload: Workload,
    log_dir: Path,
    mode: str,
    duration_s: float,
    *,
    timeout_s: float | None = None,
    abort_reason: Callable[[], str | None] | None = None,
) -> WorkloadRun:
    """Run the workload to completion; its stdout and stderr go to files in ``log_dir``.

    ``abort_reason`` is polled while it runs (e.g. "the director closed the connection"); a
    non-None answer stops the workload and fails with that reason.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    command = workload.command(log_dir, duration_s)
    stdout_path, stderr_path = log_dir / "workload_stdout.txt", log_dir / "workload_stderr.txt"
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        started = time.time()
        try:
            process = subprocess.Popen(
                command, shell=isinstance(command, str), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                env=workload_environment(log_dir, mode, duration_s), start_new_session=True,
            )
        except OSError as exc:
            raise WorkloadError(f"cannot start workload {workload.name}: {exc}") from exc
        deadline = started + timeout_s if timeout_s else None
        reason: str | None = None
        try:
            while process.poll() is None:
                if deadline is not None and time.time() > deadline:
                    reason = f"workload {workload.name} ran past its {timeout_s:g} s timeout"
                elif abort_reason is not None:
                    reason = abort_reason()
                if reason is not None:
                    _stop(process)
                    break
                time.sleep(POLL_S)
        finally:
            if process.poll() is None:  # an exception (e.g. KeyboardInterrupt) must not orphan it
                _stop(process)
        finished = time.time()
    if reason is not None:
        raise WorkloadError(reason)
    if process.returncode != 0:
        stderr_text = stderr_path.read_text(encoding="utf-8", errors="replace")
        raise WorkloadFailed(workload.name, process.returncode, tail(stderr_text))
    return WorkloadRun(started, finished, log_dir)
