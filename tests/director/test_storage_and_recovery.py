"""A full results disk fails the session with that reason; a run a killed director left open is
closed as aborted at the next start, its samples kept."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import polars as pl
import pytest
from mlpower.director import outputs
from mlpower.director.recovery import REASON, recover_interrupted_runs, recover_run
from mlpower.director.session import MeasurementSession, PhaseError, SessionConfig, SessionIdentity
from mlpower.director.session_states import StartPhase, State, StopPhase
from mlpower.director.settings import DirectorSettings
from mlpower.runstream import RunStream, read_documents
from mlpower.schema import RunStop, SamplePage, SourceInfo
from mlpower.testing import wait_for

from tests.shared.test_runstream_storage import FillsUp, RecordingBus

from .fakes import FakeSource


def _session(tmp_path: Path, bus: RecordingBus) -> MeasurementSession:
    config = SessionConfig(tmp_path, sample_interval_s=0.1, sleep_s=0.0, debug=True, page_interval_s=0.2)
    session = MeasurementSession(SessionIdentity("disk"), [("analyzer1", FakeSource())], config, bus=bus)  # type: ignore[list-item]
    session.open()
    return session


def test_documents_jsonl_refused_mid_phase_fails_the_session_with_the_reason(tmp_path: Path) -> None:
    bus = RecordingBus()
    session = _session(tmp_path, bus)
    session.handle(StartPhase("ranging"))
    wait_for(lambda: any(isinstance(d, SamplePage) for d in bus.published), what="a page on the bus")
    assert session.stream is not None
    session.stream._log = FillsUp(session.stream._log, room=0)
    assert session.wait_ended(5), "a full disk must end the run"
    assert session.state is State.FAILED
    assert session.status_reason == "results disk full: cannot write documents.jsonl: No space left on device"
    stored = list(read_documents(session.dir / "documents.jsonl"))
    assert stored and not isinstance(stored[-1], RunStop)
    stop = bus.published[-1]
    assert isinstance(stop, RunStop) and stop.status == "failed" and stop.reason == session.status_reason
    assert stop.samples == sum(len(d) for d in bus.published if isinstance(d, SamplePage)) > 0


def test_phase_files_refused_fail_the_session_instead_of_leaving_it_stuck(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    session = _session(tmp_path, RecordingBus())
    session.handle(StartPhase("ranging"))
    wait_for(lambda: session.readings("ranging"), what="a ranging sample")
    real = outputs.write_text

    def full(path: Path, text: str) -> None:
        if path.name == "spl.txt":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, text)

    monkeypatch.setattr(outputs, "write_text", full)
    with pytest.raises(PhaseError, match="results disk full: cannot write the ranging files"):
        session.handle(StopPhase("ranging"))
    assert session.ended and session.state is State.FAILED
    assert "results disk full" in json.loads((session.dir / "power" / "server.json").read_text())["mlpower"]["reason"]


def test_write_text_leaves_no_temporary_file_when_the_disk_refuses(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "server.json"
    target.write_text("old")

    def refuse(self: Path, *args: object, **kwargs: object) -> int:
        self.open("w").write("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", refuse)
    with pytest.raises(OSError):
        outputs.write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["server.json"]


def _interrupted_run(results: Path, run_id: str, *, sut: str = "sut") -> Path:
    folder = results / run_id
    (folder / "ranging").mkdir(parents=True)
    stream = RunStream(None, dict(run_id=run_id, lab="lab", sut=sut, analyzer="analyzer1", t_utc_s=1.0,
                                  settings={"sample_interval_s": 1.0, "debug": True}),
                       log_path=folder / "documents.jsonl")
    stream.descriptor(stream="analyzer1", source=SourceInfo(kind="wt310e"), sample_interval_s=1.0)
    for mode in ("ranging", "testing"):
        stream.mark(f"{mode}_begin", mode=mode, t_utc_s=10.0)
        for n in range(3):
            t = 10.0 + n
            stream.page("analyzer1", mode=mode, t_utc_s=[t, t + 0.5], power_w=[100.0, 101.0], voltage_v=[230.0] * 2,
                        current_a=[0.4] * 2, power_factor=[1.0] * 2, voltage_range_v=[300.0] * 2,
                        current_range_a=[1.0] * 2, uncertainty_w=[0.2] * 2, flags=[0, 0])
        if mode == "ranging":
            stream.mark("ranging_end", mode=mode, t_utc_s=13.0)
            (folder / "ranging" / "spl.txt").write_text("written when ranging stopped\n")
    with open(folder / "documents.jsonl", "ab") as handle:
        handle.write(b'{"v":1,"run_id":"' + run_id.encode() + b'","seq":11,"type":"run.pa')  # torn by the kill
    return folder


def test_an_interrupted_run_is_closed_as_aborted_with_its_samples(tmp_path: Path) -> None:
    folder = _interrupted_run(tmp_path, "r1")
    bus = RecordingBus()
    found = recover_run(folder, bus)  # type: ignore[arg-type]
    assert found is not None and found.status == "aborted" and found.samples == 12 and found.pages == 6
    documents = list(read_documents(folder / "documents.jsonl"))  # the torn line is gone
    stop = documents[-1]
    assert isinstance(stop, RunStop) and stop.status == "aborted" and stop.reason == REASON
    assert stop.seq == 11 and stop.samples == 12 and stop.marks == 3
    table = pl.read_parquet(folder / "samples.parquet")
    assert table.height == 12 and table.filter(pl.col("mode") == "testing").height == 6
    assert (folder / "ranging" / "spl.txt").read_text() == "written when ranging stopped\n"  # kept as it was
    assert (folder / "run_1" / "spl.txt").read_text().count("Mark,r1_testing") == 6
    summary = json.loads((folder / "power" / "server.json").read_text())
    assert summary["mlpower"]["status"] == "aborted" and summary["session_name"] == "r1"
    assert "[ERROR] session aborted: director restarted" in (folder / "power" / "server.log").read_text()
    assert [d.seq for d in bus.published] == list(range(12))  # replayed, then the stop
    event = bus.published[-1]  # the end-of-run fact, naming the folder
    assert isinstance(event, RunStop) and event.status == "aborted" and event.output_dir == str(folder)
    assert recover_run(folder, bus) is None  # type: ignore[arg-type]  # closed once only


def test_only_this_directors_open_runs_are_closed(tmp_path: Path) -> None:
    ours, theirs = _interrupted_run(tmp_path, "ours"), _interrupted_run(tmp_path, "theirs", sut="other")
    settings = DirectorSettings(results_dir=tmp_path, sut="sut", lab="lab")
    assert [r.run_id for r in recover_interrupted_runs(settings)] == ["ours"]
    assert b"run.stop" in (ours / "documents.jsonl").read_bytes()
    assert b"run.stop" not in (theirs / "documents.jsonl").read_bytes()
    assert recover_interrupted_runs(settings) == []
