"""What HTTP and the bus ask the director for: a ``RunPlan`` (which modes, what runs during each,
with which ranges), and the ``PhaseRunner`` contract of whoever runs the workload in a mode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mlpower.schema import BUILTIN_WORKLOADS, SCENARIOS, WorkloadRequest

from .errors import DirectorError
from .session_states import MODES, Abort, Fail, ManualRanges, Mode

if TYPE_CHECKING:
    from .session import MeasurementSession


@dataclass(frozen=True)
class TimedWorkload:
    """Nothing to start on the SUT: each mode lasts ``phase_s`` seconds (e.g. idle power)."""

    phase_s: float


@dataclass(frozen=True)
class AgentWorkload:
    """The SUT agent runs this workload in each mode and says when it is done. The request names a
    workload the agent's owner declared (None: the agent's default); it never carries a command."""

    request: WorkloadRequest | None
    settings: dict[str, Any] = field(default_factory=dict)

    def recorded(self) -> dict[str, Any] | None:
        """The request as the run records it (plain JSON in ``RunStart.settings``)."""
        return None if self.request is None else self.request.model_dump(exclude_none=True)


Workload = TimedWorkload | AgentWorkload

DRIVERS = {TimedWorkload: "direct", AgentWorkload: "bus"}
"""What drove a plan's run, recorded as ``RunStart.settings["driver"]`` so the run view knows the
kind of run from the stream alone (power-dev sessions record ``powerdev``)."""

Outcome = Fail | Abort | None
"""How a mode's workload ended: None = finished; else the event that ends the run."""


class PlanError(DirectorError):
    """A plan that cannot be measured as asked."""


@dataclass(frozen=True)
class RunPlan:
    workload: Workload
    run_id: str = ""  # "" = the director names the run
    benchmark: str = ""
    scenario: str = ""
    modes: tuple[Mode, ...] = MODES
    sample_interval_s: float | None = None  # None = the director's setting
    manual_ranges: ManualRanges | None = None  # testing ranges; needed when ranging is skipped
    settings: dict[str, Any] = field(default_factory=dict)  # recorded with the run (RunStart.settings)

    def __post_init__(self) -> None:
        if not self.modes or any(mode not in MODES for mode in self.modes) or len(set(self.modes)) != len(self.modes):
            raise PlanError(f"modes must be ranging and/or testing, each once: {self.modes}")
        if "ranging" not in self.modes and self.manual_ranges is None:
            raise PlanError("testing without ranging needs voltage_range_v and current_range_a")
        if list(self.modes) != sorted(self.modes, key=MODES.index):
            raise PlanError("ranging comes before testing")
        if self.scenario and self.scenario not in SCENARIOS:
            raise PlanError(f"unknown scenario {self.scenario!r}: one of {', '.join(SCENARIOS)}")
        request = self.workload.request if isinstance(self.workload, AgentWorkload) else None
        if request is not None and request.name.lower().startswith("builtin:") \
                and request.name.lower() not in BUILTIN_WORKLOADS:
            raise PlanError(f"unknown built-in workload {request.name!r}: one of {', '.join(BUILTIN_WORKLOADS)}")


class PhaseRunner(Protocol):
    """Runs the workload of one mode while the session measures; returns how it ended."""

    def run_phase(self, session: MeasurementSession, mode: Mode, workload: Any) -> Outcome: ...


class TimedPhases:
    """A timed mode: wait ``phase_s`` on the session's clock (at once when the run is stopped)."""

    def run_phase(self, session: MeasurementSession, mode: Mode, workload: TimedWorkload) -> Outcome:
        session.sleep(workload.phase_s)
        return None
