"""Driving a session in the tests with the events a power-dev client would send: each phase lasts
until every analyzer has the samples the test needs (waited for, not slept)."""

from __future__ import annotations

from collections.abc import Callable

from mlpower.director.session import MeasurementSession
from mlpower.director.session_states import MODES, Done, Mode, StartPhase, StopPhase
from mlpower.testing import wait_for


def measure(session: MeasurementSession, mode: Mode, samples: int = 3) -> None:
    """Start ``mode``, wait until every analyzer has ``samples`` readings of it, stop it."""
    session.handle(StartPhase(mode))
    wait_for(lambda: all(len(a.readings[mode]) >= samples for a in session.analyzers), 30,
             what=f"{samples} {mode} samples from each analyzer")
    session.handle(StopPhase(mode))


def run_phases(session: MeasurementSession, samples: int = 3, between: Callable[[], None] | None = None) -> None:
    """Open ``session``, measure ranging then testing (``between`` runs in between), done."""
    session.open()
    for mode in MODES:
        measure(session, mode, samples)
        if mode == "ranging" and between is not None:
            between()
    session.handle(Done())
