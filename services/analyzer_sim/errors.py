"""The simulator's errors; the CLI turns them into one line and exit status 2."""

from mlpower.errors import MlpowerError


class SimulatorError(MlpowerError):
    """Something the simulator cannot do as asked."""


class LoadSpecError(SimulatorError, ValueError):
    """A --load spec that does not parse, or a trace file that cannot be read."""


class PtdArgumentError(SimulatorError):
    """A PTDaemon command line the emulator does not accept."""
