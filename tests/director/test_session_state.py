"""The session state machine: the declared table, idempotent repeats, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlpower.director.session import TERMINAL, TRANSITIONS, Action, Event, InvalidTransition, State, transition


def test_the_happy_path() -> None:
    state = State.IDLE
    for event, expected in [(Event.START_RANGING, State.RANGING), (Event.STOP_RANGING, State.RANGED),
                            (Event.START_TESTING, State.TESTING), (Event.STOP_TESTING, State.TESTED),
                            (Event.DONE, State.DONE)]:
        step = transition(state, event)
        assert step.action is not Action.NONE and step.state is expected
        state = step.state


@pytest.mark.parametrize(("state", "event"), [
    (State.RANGING, Event.START_RANGING), (State.RANGED, Event.STOP_RANGING),
    (State.TESTING, Event.START_TESTING), (State.TESTED, Event.STOP_TESTING), (State.DONE, Event.DONE),
])
def test_repeats_are_idempotent(state: State, event: Event) -> None:
    assert transition(state, event).action is Action.NONE


@pytest.mark.parametrize(("state", "event"), [
    (State.IDLE, Event.START_TESTING),  # nothing to derive fixed ranges from
    (State.IDLE, Event.STOP_RANGING), (State.RANGING, Event.START_TESTING), (State.TESTED, Event.START_RANGING),
    (State.DONE, Event.START_RANGING), (State.FAILED, Event.DONE), (State.ABORTED, Event.FAIL),
])
def test_out_of_order_is_refused(state: State, event: Event) -> None:
    with pytest.raises(InvalidTransition, match=state.value):
        transition(state, event)


def test_manual_ranges_may_skip_ranging() -> None:
    assert transition(State.IDLE, Event.START_TESTING_MANUAL).state is State.TESTING


@given(st.lists(st.sampled_from(list(Event)), max_size=30))
def test_terminal_states_are_final_and_every_step_is_declared(events: list[Event]) -> None:
    state = State.IDLE
    for event in events:
        try:
            step = transition(state, event)
        except InvalidTransition:
            assert (state, event) not in TRANSITIONS
            continue
        assert TRANSITIONS[(state, event)] == step
        if state in TERMINAL:
            assert step.action is Action.NONE and step.state is state
        if step.action is not Action.NONE:
            state = step.state
