"""mlpower.analyzer_sim: a Yokogawa WT310E simulator (SCPI over TCP and a pty) and a PTDaemon emulator.

Other services and tests use ``start_simulator`` and ``start_ptd``; both return handles that stop
with ``.stop()`` and work as context managers.
"""

from mlpower.analyzer_sim.clock import VirtualClock
from mlpower.analyzer_sim.simulator import PtdHandle, SimulatorHandle, start_ptd, start_simulator

__all__ = ["PtdHandle", "SimulatorHandle", "VirtualClock", "start_ptd", "start_simulator"]
