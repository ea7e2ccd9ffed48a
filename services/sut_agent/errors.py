"""The SUT agent's failures; the CLI and the bus handler translate them once, at the edge."""

from __future__ import annotations

from mlpower.errors import MlpowerError


class AgentError(MlpowerError):
    """Any expected failure of the SUT agent."""


class WorkloadError(AgentError):
    """The workload could not be started or ended badly."""


class WorkloadRefused(WorkloadError):
    """A requested workload this SUT does not declare, or a parameter it does not take: nothing ran."""


class RegistryError(AgentError):
    """The SUT's workload configuration (MLPOWER_AGENT_WORKLOADS) cannot be used; the message names the file."""


class WorkloadFailed(WorkloadError):
    """The workload exited non-zero; the exit code and the end of its stderr are kept."""

    def __init__(self, command: str, exit_code: int, stderr_tail: str) -> None:
        self.command, self.exit_code, self.stderr_tail = command, exit_code, stderr_tail
        tail = f"; stderr ends with:\n{stderr_tail}" if stderr_tail else " (no stderr)"
        super().__init__(f"workload exited with status {exit_code}: {command}{tail}")


class LoadGenLogError(AgentError):
    """LoadGen logs are missing, or lack the power markers; the message names the file or folder."""


class ClockOffsetError(AgentError):
    """The clock offset to the director (or to NTP) exceeds the rules' limit."""


class ProtocolError(AgentError):
    """The power-dev server answered something the protocol does not allow here."""


class ConnectionLost(ProtocolError):
    """The connection to the power-dev server closed or broke in the middle of a session."""
