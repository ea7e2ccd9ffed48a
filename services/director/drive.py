"""Drive a session through its modes: start, let the workload run, stop; then done, fail or abort.

``wait_workload(mode)`` is what happens between start and stop: the bus-mode agent round trip,
or a timed wait for an HTTP run. It returns ``None`` when the workload finished, or the reason
the run must end (``("failed", why)`` / ``("aborted", why)``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from mlpower.errors import MlpowerError

from .runner import MeasurementSession

log = logging.getLogger(__name__)

Outcome = tuple[str, str] | None
"""None = the workload finished; else (``failed`` | ``aborted``, reason)."""


def drive(session: MeasurementSession, modes: Sequence[str], wait_workload: Callable[[str], Outcome],
          manual_ranges: tuple[float, float] | None = None) -> str:
    """Run ``modes`` in order and end the session; returns its final status."""
    try:
        for mode in modes:
            session.start(mode, manual_ranges if mode == "testing" else None)
            outcome = wait_workload(mode)
            if session.ended:
                break
            if outcome is not None:
                status, reason = outcome
                (session.fail if status == "failed" else session.abort)(reason)
                break
            session.stop(mode)
        else:
            session.done()
    except MlpowerError as exc:
        log.error("run %s: %s", session.run_id, exc)
        session.fail(str(exc))
    return {"done": "success"}.get(session.state.value, session.state.value)
