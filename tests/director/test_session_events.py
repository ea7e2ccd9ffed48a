"""The session driven by its typed events on a fake clock: what each event does to the analyzer and
the record, idempotent repeats, refusals out of order, and the analyzer sleeps taken on the clock."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mlpower.director.session import MeasurementSession, SessionConfig, SessionIdentity
from mlpower.director.session_states import (
    Abort,
    Done,
    Fail,
    InvalidTransition,
    ManualRanges,
    StartPhase,
    State,
    StopPhase,
)
from mlpower.testing import FakeClock, wait_for

from .fakes import FakeSource

SLEEP_S = 10.0  # power-dev's analyzer sleep: compliant, and instant on the fake clock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _session(tmp_path: Path, clock: FakeClock, run_id: str = "s") -> tuple[MeasurementSession, FakeSource]:
    source = FakeSource(lambda n: 200.0, clock=clock, update_s=0.005)  # 0.87 A: the 1 A range
    session = MeasurementSession(SessionIdentity(run_id), [("analyzer1", source)],
                                 SessionConfig(tmp_path, sample_interval_s=1.0, sleep_s=SLEEP_S), clock=clock)
    session.open()
    return session, source


def _phase(session: MeasurementSession, mode: str) -> None:
    session.handle(StartPhase(mode))  # type: ignore[arg-type]
    wait_for(lambda: len(session.readings(mode)) >= 3, what=f"3 {mode} samples")  # type: ignore[arg-type]
    session.handle(StopPhase(mode))  # type: ignore[arg-type]


def test_a_whole_session_by_events_with_the_sleeps_on_its_clock(tmp_path: Path, clock: FakeClock) -> None:
    started = time.monotonic()
    session, source = _session(tmp_path, clock)
    states = []
    for mode in ("ranging", "testing"):
        _phase(session, mode)
        states.append(session.state)
    session.handle(Done())
    assert time.monotonic() - started < 20, "four 10 s sleeps must not be slept"
    assert states == [State.RANGED, State.TESTED] and session.state is State.DONE and session.status == "success"
    sid = "s"
    commands = [c for c in source.calls if c[0] in ("set_ranges", "start", "stop", "close")]
    assert commands == [("set_ranges", None, None), ("start", f"{sid}_ranging"), ("stop",),
                        ("set_ranges", 300.0, 1.0), ("start", f"{sid}_testing"), ("stop",),
                        ("set_ranges", None, None), ("close",)]
    summary = json.loads((session.dir / "power" / "server.json").read_text())
    assert "debug" not in summary  # 10 s sleeps: compliant
    for mode in ("ranging", "testing"):
        (begin, _), (go, _), (stop, _), (end, _) = summary["phases"][mode]
        assert go - begin >= SLEEP_S and end - stop >= SLEEP_S  # the sleeps, in the clock's time
        assert begin < go <= stop < end
    assert all(begin <= r.t_utc_s for r in session.readings("testing"))


def test_repeated_events_do_nothing_twice(tmp_path: Path, clock: FakeClock) -> None:
    session, source = _session(tmp_path, clock)
    session.handle(StartPhase("ranging"))
    session.handle(StartPhase("ranging"))
    wait_for(lambda: len(session.readings("ranging")) >= 3, what="3 ranging samples")
    session.handle(StopPhase("ranging"))
    session.handle(StopPhase("ranging"))
    assert [c[0] for c in source.calls].count("start") == 1 and [c[0] for c in source.calls].count("stop") == 1
    assert len(json.loads(json.dumps(session.phases["ranging"]))) == 4
    session.handle(Done())
    session.handle(Done())
    assert session.state is State.DONE and [c[0] for c in source.calls].count("close") == 1


@pytest.mark.parametrize(("before", "event"), [
    ((), StopPhase("ranging")),
    ((), StartPhase("testing")),  # no ranging to derive fixed ranges from
    ((), StopPhase("testing")),
    ((StartPhase("ranging"),), StartPhase("testing")),
])
def test_events_out_of_order_are_refused_and_change_nothing(tmp_path: Path, clock: FakeClock, before: tuple,
                                                            event: StartPhase | StopPhase) -> None:
    session, source = _session(tmp_path, clock)
    for earlier in before:
        session.handle(earlier)
    state, calls = session.state, list(source.calls)
    with pytest.raises(InvalidTransition, match=state.value):
        session.handle(event)
    assert session.state is state and source.calls == calls
    session.handle(Abort("test over"))


def test_manual_ranges_skip_ranging(tmp_path: Path, clock: FakeClock) -> None:
    session, source = _session(tmp_path, clock)
    session.handle(StartPhase("testing", ManualRanges(230.0, 2.0)))
    assert session.state is State.TESTING and ("set_ranges", 230.0, 2.0) in source.calls
    session.handle(Done())
    summary = json.loads((session.dir / "power" / "server.json").read_text())
    assert summary["mlpower"]["manual_ranges"] is True and summary["phases"]["ranging"] == []


@pytest.mark.parametrize("end", [Fail("broken"), Abort("stopped")])
def test_an_ended_session_refuses_phases_and_stays_ended(tmp_path: Path, clock: FakeClock,
                                                         end: Fail | Abort) -> None:
    session, source = _session(tmp_path, clock)
    session.handle(StartPhase("ranging"))
    session.handle(end)
    assert session.ended and session.status == ("failed" if isinstance(end, Fail) else "aborted")
    assert session.status_reason == end.reason
    with pytest.raises(InvalidTransition):
        session.handle(StopPhase("ranging"))
    session.handle(Done())  # too late: the run stays what it was
    assert session.status != "success"
    assert json.loads((session.dir / "power" / "server.json").read_text())["mlpower"]["reason"] == end.reason
