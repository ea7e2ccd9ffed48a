"""ptd_logs.txt of PTDaemon runs keeps PTDaemon's console (power-dev-protocol.md §3.4, §3.8): the
start-up line ``Uncertainty checking for Yokogawa... is activated`` the checker needs (§5.2 check 9)
comes before the ranging Go, and a long-running PTDaemon's earlier sessions are left out."""

from __future__ import annotations

from pathlib import Path

from mlpower.analyzer_sim.simulator import start_ptd
from mlpower.director.ptd_format import identify_checks_uncertainty, running_console_excerpt
from mlpower.director.session import MeasurementSession, SessionConfig, SessionIdentity
from mlpower.director.sources import open_source

from .drive import run_phases

IDENTIFY = ("YokogawaWT210,1000,1,1,1,1,0,0,1,version=1.10.0-82175bac-20220817,OS=Windows 8 / Server 2012,"
            "mode=power,{accuracy},1,1,0,0,no_cal_date,YOKOGAWA;760401;0;F1.12")
STAMP = r"\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}\.\d{3}: "


def test_identify_says_whether_ptdaemon_checks_uncertainty() -> None:
    assert identify_checks_uncertainty(IDENTIFY.format(accuracy=1))
    assert not identify_checks_uncertainty(IDENTIFY.format(accuracy=0))
    assert not identify_checks_uncertainty("Unknown command: Identify")


def test_running_console_keeps_start_up_and_this_session_only() -> None:
    start_up = "Version 1.11.1\n01-01-2026 00:00:00.000: Uncertainty checking for YokogawaWT310 is activated\n"
    first = "01-01-2026 00:00:01.000: Accepted connection from 127.0.0.1:1\n01-01-2026 00:00:02.000: ERROR: old\n"
    second = "01-01-2026 00:01:00.000: Accepted connection from 127.0.0.1:2\n01-01-2026 00:01:01.000: Go\n"
    text = start_up + first + second
    assert running_console_excerpt(text, len((start_up + first).encode())) == start_up + second
    assert running_console_excerpt(start_up + first, len(start_up.encode())) == start_up + first
    assert running_console_excerpt("no start-up lines\n", 5) == "no start-up lines\n"[5:]


def _session(tmp_path: Path, ptd: object, name: str, **options: object) -> MeasurementSession:
    source = open_source(f"ptd://127.0.0.1:{ptd.port}", data_log=ptd.log_path, **options)  # type: ignore[attr-defined]
    session = MeasurementSession(SessionIdentity(name), [("analyzer1", source)],
                                 SessionConfig(tmp_path / "results", sample_interval_s=1.0, sleep_s=0.05, debug=True))
    run_phases(session, samples=2)
    assert session.state.value == "done", session.status_reason
    return session


def _messages(session: MeasurementSession) -> list[str]:
    import re

    text = (session.dir / "power" / "ptd_logs.txt").read_text()
    assert text.startswith("Analyzer 1\n")
    return [re.sub(f"^{STAMP}", "", line) for line in text.splitlines() if re.match(STAMP, line)]


def test_ptdaemon_console_is_kept_in_ptd_logs(tmp_path: Path) -> None:
    console = tmp_path / "ptd_console.txt"
    with start_ptd(port=0, log_path=tmp_path / "ptd.log", console_path=console, load="constant:200") as ptd:
        first = _session(tmp_path, ptd, "first", console_log=console)
        second = _session(tmp_path, ptd, "second", console_log=console)
    for session in (first, second):
        messages = _messages(session)
        go = messages.index(f"Go with mark '{session.mark('ranging')}'")
        assert messages.index("Uncertainty checking for YokogawaWT310 is activated") < go
        assert "Completed test" in messages[go:] and messages[0].startswith("Attempting to connect")
        # what PTDaemon itself printed, not the director's record of it
        assert not any(m.startswith("mlpower director:") for m in messages)
        # each session's lines only (the emulator has been running since before the first)
        errors = [i for i, m in enumerate(messages) if m.startswith("ERROR:")]
        done = messages.index("Completed test")
        assert errors and all(go < i < done for i in errors)
    assert f"'{first.mark('ranging')}'" not in (second.dir / "power" / "ptd_logs.txt").read_text()


def test_without_ptdaemons_console_the_director_records_the_activation_from_identify(tmp_path: Path) -> None:
    with start_ptd(port=0, log_path=tmp_path / "ptd.log", load="constant:200") as ptd:
        session = _session(tmp_path, ptd, "no-console")
    messages = _messages(session)
    assert messages[0].startswith("mlpower director: ptdaemon source")
    assert messages.index("Uncertainty checking for YokogawaWT310 is activated") < \
        messages.index(f"Go with mark '{session.mark('ranging')}'")
