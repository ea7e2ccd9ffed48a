"""One workload phase (ranging or testing): run it, read LoadGen's window and result, tell the lab.

Events, in order: ``started`` right before the workload starts; after it ended, ``power_begin``
and ``power_end`` carrying the times LoadGen logged (only known once the log is written), then
``finished`` with the result; or ``failed`` with the reason. Both bus mode and power-dev client
mode run their phases through ``run_phase``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlpower.schema import Mode, WorkloadPhase
from mlpower.sut_agent.errors import AgentError, WorkloadFailed
from mlpower.sut_agent.loadgen_logs import LoadGenResult, find_run_logs
from mlpower.sut_agent.workloads import Workload, compliant_duration, run_workload
from mlpower.timeutil import now_utc_s

log = logging.getLogger(__name__)

# The two runs of a session, in order, with power-dev's output folder of each.
MODES: tuple[tuple[Mode, str], ...] = (("ranging", "ranging"), ("testing", "run_1"))
MODE_DIRS: dict[str, str] = dict(MODES)

Publish = Callable[[WorkloadPhase], None]


def no_publish(_: WorkloadPhase) -> None:
    """For runs nobody listens to (a client session without a bus)."""


@dataclass(frozen=True)
class PhaseOutcome:
    mode: Mode
    started_utc_s: float
    finished_utc_s: float
    result: LoadGenResult
    compliant_durations: bool

    @property
    def log_dir(self) -> Path:
        return self.result.detail_path.parent

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "workload_started_utc_s": self.started_utc_s,
            "workload_finished_utc_s": self.finished_utc_s,
            "compliant_durations": self.compliant_durations,
            "loadgen": self.result.as_dict(),
        }


def durations_compliant(result: LoadGenResult, asked_duration_s: float) -> bool:
    """LoadGen's own min_duration when it logged one (a command workload sets its own), else the asked one."""
    if result.min_duration_ms is not None:
        return compliant_duration(result.min_duration_ms / 1000)
    return compliant_duration(asked_duration_s)


def run_phase(
    workload: Workload,
    mode: Mode,
    log_dir: Path,
    *,
    run_id: str,
    sut: str,
    duration_s: float,
    publish: Publish = no_publish,
    started_detail: str = "",
    timeout_s: float | None = None,
    abort_reason: Callable[[], str | None] | None = None,
    on_start: Callable[[int], None] | None = None,
    stop_grace_s: float = 5.0,
) -> PhaseOutcome:
    def event(state: str, t_utc_s: float, detail: str = "") -> None:
        publish(WorkloadPhase(run_id=run_id, sut=sut, mode=mode, state=state, t_utc_s=t_utc_s, detail=detail))

    event("started", now_utc_s(), started_detail or f"workload {workload.name}")
    try:
        run = run_workload(workload, log_dir, mode, duration_s, timeout_s=timeout_s, abort_reason=abort_reason,
                           on_start=on_start, stop_grace_s=stop_grace_s)
        result = find_run_logs(log_dir, run.started_utc_s, run.finished_utc_s)
    except AgentError as exc:
        event("failed", now_utc_s(), failure_detail(exc))
        raise
    outcome = PhaseOutcome(mode, run.started_utc_s, run.finished_utc_s, result, durations_compliant(result, duration_s))
    event("power_begin", result.window.begin_utc_s, str(result.detail_path))
    event("power_end", result.window.end_utc_s, str(result.detail_path))
    event("finished", now_utc_s(), json.dumps(outcome.as_dict(), sort_keys=True))
    log.info("%s run done: %s %s = %s %s, window %.3f s, compliant durations: %s", mode, result.scenario,
             result.metric_key, result.metric_value, result.metric_unit, result.window.duration_s,
             outcome.compliant_durations)
    return outcome


def failure_detail(exc: AgentError) -> str:
    if isinstance(exc, WorkloadFailed):
        return json.dumps({"error": str(exc), "exit_code": exc.exit_code, "stderr_tail": exc.stderr_tail})
    return json.dumps({"error": str(exc)})
