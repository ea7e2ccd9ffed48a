"""The measurement session as an explicit state machine: pure, declared as a table.

The power-dev server, bus mode and the HTTP API all drive sessions through ``transition``; the
side effects (set ranges, sleep, start sampling, write files) belong to ``MeasurementSession``
in ``runner.py``, which looks up the action to take here first.

States follow power-dev (INITIAL, RANGING, RANGING_DONE, TESTING, TESTING_DONE, DONE) under the
director's names, plus ``failed`` (the analyzer or the workload broke) and ``aborted`` (someone
stopped the run or the client went away). Repeating a start or stop that already happened is
an idempotent no-op, as upstream.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mlpower.errors import MlpowerError


class State(enum.StrEnum):
    IDLE = "idle"
    RANGING = "ranging"
    RANGED = "ranging_done"
    TESTING = "testing"
    TESTED = "testing_done"
    DONE = "done"
    FAILED = "failed"
    ABORTED = "aborted"


class Event(enum.StrEnum):
    START_RANGING = "start_ranging"
    STOP_RANGING = "stop_ranging"
    START_TESTING = "start_testing"  # fixed ranges from the ranging samples
    START_TESTING_MANUAL = "start_testing_manual"  # ranges given by the client; ranging skipped
    STOP_TESTING = "stop_testing"
    DONE = "done"
    FAIL = "fail"
    ABORT = "abort"


class Action(enum.StrEnum):
    NONE = "none"  # idempotent repeat: reply OK, do nothing
    START_PHASE = "start_phase"
    STOP_PHASE = "stop_phase"
    FINISH = "finish"  # write the remaining outputs, close the analyzer
    FAIL = "fail"
    ABORT = "abort"


@dataclass(frozen=True)
class Step:
    state: State
    action: Action


TERMINAL = frozenset({State.DONE, State.FAILED, State.ABORTED})

S, E, A = State, Event, Action
TRANSITIONS: dict[tuple[State, Event], Step] = {
    (S.IDLE, E.START_RANGING): Step(S.RANGING, A.START_PHASE),
    (S.RANGING, E.START_RANGING): Step(S.RANGING, A.NONE),
    (S.RANGING, E.STOP_RANGING): Step(S.RANGED, A.STOP_PHASE),
    (S.RANGED, E.STOP_RANGING): Step(S.RANGED, A.NONE),
    (S.RANGED, E.START_TESTING): Step(S.TESTING, A.START_PHASE),
    (S.IDLE, E.START_TESTING_MANUAL): Step(S.TESTING, A.START_PHASE),
    (S.RANGED, E.START_TESTING_MANUAL): Step(S.TESTING, A.START_PHASE),
    (S.TESTING, E.START_TESTING): Step(S.TESTING, A.NONE),
    (S.TESTING, E.START_TESTING_MANUAL): Step(S.TESTING, A.NONE),
    (S.TESTING, E.STOP_TESTING): Step(S.TESTED, A.STOP_PHASE),
    (S.TESTED, E.STOP_TESTING): Step(S.TESTED, A.NONE),
    # upstream accepts `done` in any state of an open session
    **{(state, E.DONE): Step(S.DONE, A.FINISH) for state in (S.IDLE, S.RANGING, S.RANGED, S.TESTING, S.TESTED)},
    (S.DONE, E.DONE): Step(S.DONE, A.NONE),
    **{(state, E.FAIL): Step(S.FAILED, A.FAIL) for state in (S.IDLE, S.RANGING, S.RANGED, S.TESTING, S.TESTED)},
    **{(state, E.ABORT): Step(S.ABORTED, A.ABORT) for state in (S.IDLE, S.RANGING, S.RANGED, S.TESTING, S.TESTED)},
}
"""Every allowed (state, event); anything else is out of order. Note: upstream also accepts a
plain ``start,testing`` from INITIAL (a truthiness quirk that then sends ``SR,V,0``); we refuse
it, because fixed ranges with nothing to derive them from can only fail later."""

MODE_OF_EVENT: dict[Event, str] = {
    E.START_RANGING: "ranging", E.STOP_RANGING: "ranging",
    E.START_TESTING: "testing", E.START_TESTING_MANUAL: "testing", E.STOP_TESTING: "testing",
}


class InvalidTransition(MlpowerError):
    """An event that is not allowed in the session's current state."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"cannot {event.value.replace('_', ' ')} while the session is {state.value}")
        self.state, self.event = state, event


def transition(state: State, event: Event) -> Step:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None
