"""The measurement session's states, the typed events that drive it, and its transition table; pure.

States follow power-dev (INITIAL, RANGING, RANGING_DONE, TESTING, TESTING_DONE, DONE) under the
director's names, plus ``failed`` (the analyzer or the workload broke) and ``aborted`` (someone
stopped the run or the client went away). Whoever drives a session (the power-dev server for a
client, ``Director.run`` for HTTP and the bus) hands it one of the events below through
``MeasurementSession.handle``; the session looks up here what the event means in its state.
Repeating a start or stop that already happened is an idempotent no-op, as upstream.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Literal

from .errors import DirectorError

Mode = Literal["ranging", "testing"]
MODES: tuple[Mode, ...] = ("ranging", "testing")


class State(enum.StrEnum):
    IDLE = "idle"
    RANGING = "ranging"
    RANGED = "ranging_done"
    TESTING = "testing"
    TESTED = "testing_done"
    DONE = "done"
    FAILED = "failed"
    ABORTED = "aborted"


END_STATUS: dict[State, str] = {State.DONE: "success", State.FAILED: "failed", State.ABORTED: "aborted"}
"""A session's final state -> the run's status (RunStop, server.json)."""
TERMINAL = frozenset(END_STATUS)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class ManualRanges:
    """Fixed testing ranges given by the client instead of derived from ranging."""

    voltage_v: float
    current_a: float

    @property
    def valid(self) -> bool:
        return all(math.isfinite(x) and x > 0 for x in (self.voltage_v, self.current_a))


@dataclass(frozen=True)
class StartPhase:
    """Start ranging (auto ranges) or testing (ranges from ranging, or ``manual_ranges``)."""

    mode: Mode
    manual_ranges: ManualRanges | None = None


@dataclass(frozen=True)
class StopPhase:
    """Stop the phase: the analyzer's sleep (the workload's tail), stop sampling, write its files."""

    mode: Mode


@dataclass(frozen=True)
class Done:
    """The run is complete: write the remaining files, restore the analyzer, close it."""


@dataclass(frozen=True)
class Fail:
    """The analyzer or the workload broke; what was measured is kept."""

    reason: str


@dataclass(frozen=True)
class Abort:
    """Someone stopped the run, or its client went away; what was measured is kept."""

    reason: str


Event = StartPhase | StopPhase | Done | Fail | Abort


# --------------------------------------------------------------------------- the table


class Trigger(enum.StrEnum):
    """What an event means to the table."""

    START_RANGING = "start_ranging"
    STOP_RANGING = "stop_ranging"
    START_TESTING = "start_testing"  # fixed ranges from the ranging samples
    START_TESTING_MANUAL = "start_testing_manual"  # ranges given by the client; ranging skipped
    STOP_TESTING = "stop_testing"
    DONE = "done"
    FAIL = "fail"
    ABORT = "abort"


def trigger_of(event: Event) -> Trigger:
    if isinstance(event, StartPhase):
        if event.mode == "ranging":
            return Trigger.START_RANGING
        return Trigger.START_TESTING if event.manual_ranges is None else Trigger.START_TESTING_MANUAL
    if isinstance(event, StopPhase):
        return Trigger.STOP_RANGING if event.mode == "ranging" else Trigger.STOP_TESTING
    return _TRIGGER_OF_END[type(event)]


_TRIGGER_OF_END: dict[type, Trigger] = {Done: Trigger.DONE, Fail: Trigger.FAIL, Abort: Trigger.ABORT}


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


S, T, A = State, Trigger, Action
OPEN = (S.IDLE, S.RANGING, S.RANGED, S.TESTING, S.TESTED)
TRANSITIONS: dict[tuple[State, Trigger], Step] = {
    (S.IDLE, T.START_RANGING): Step(S.RANGING, A.START_PHASE),
    (S.RANGING, T.START_RANGING): Step(S.RANGING, A.NONE),
    (S.RANGING, T.STOP_RANGING): Step(S.RANGED, A.STOP_PHASE),
    (S.RANGED, T.STOP_RANGING): Step(S.RANGED, A.NONE),
    (S.RANGED, T.START_TESTING): Step(S.TESTING, A.START_PHASE),
    (S.IDLE, T.START_TESTING_MANUAL): Step(S.TESTING, A.START_PHASE),
    (S.RANGED, T.START_TESTING_MANUAL): Step(S.TESTING, A.START_PHASE),
    (S.TESTING, T.START_TESTING): Step(S.TESTING, A.NONE),
    (S.TESTING, T.START_TESTING_MANUAL): Step(S.TESTING, A.NONE),
    (S.TESTING, T.STOP_TESTING): Step(S.TESTED, A.STOP_PHASE),
    (S.TESTED, T.STOP_TESTING): Step(S.TESTED, A.NONE),
    # upstream accepts `done` in any state of an open session
    **{(state, T.DONE): Step(S.DONE, A.FINISH) for state in OPEN},
    (S.DONE, T.DONE): Step(S.DONE, A.NONE),
    **{(state, T.FAIL): Step(S.FAILED, A.FAIL) for state in OPEN},
    **{(state, T.ABORT): Step(S.ABORTED, A.ABORT) for state in OPEN},
}
"""Every allowed (state, trigger); anything else is out of order. Note: upstream also accepts a
plain ``start,testing`` from INITIAL (a truthiness quirk that then sends ``SR,V,0``); we refuse
it, because fixed ranges with nothing to derive them from can only fail later."""


class InvalidTransition(DirectorError):
    """An event that is not allowed in the session's current state."""

    def __init__(self, state: State, trigger: Trigger) -> None:
        super().__init__(f"cannot {trigger.value.replace('_', ' ')} while the session is {state.value}")
        self.state, self.trigger = state, trigger


def transition(state: State, trigger: Trigger) -> Step:
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise InvalidTransition(state, trigger) from None
