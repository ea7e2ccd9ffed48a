"""MeasurementSession with in-memory analyzers: flags, a vanishing analyzer, several analyzers, refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlpower import topology
from mlpower.bus import InMemoryBus
from mlpower.director.errors import AnalyzerLost, DirectorError
from mlpower.director.session import MeasurementSession, PhaseError, RefusedRange, SessionConfig, SessionIdentity
from mlpower.director.session_states import Abort, Done, ManualRanges, StartPhase
from mlpower.schema import RunStop, SampleFlag, SamplePage
from mlpower.testing import Inbox, wait_for

from .drive import measure, run_phases
from .fakes import FakeSource
from .formats import parse_ptd_out, parse_spl


def _session(tmp_path: Path, sources: list[FakeSource], bus: InMemoryBus | None = None,
             run_id: str = "run1") -> MeasurementSession:
    return MeasurementSession(SessionIdentity(run_id),
                              [(f"a{i}", s) for i, s in enumerate(sources, start=1)],
                              SessionConfig(tmp_path, sample_interval_s=0.1, sleep_s=0.0, debug=True,
                                            page_interval_s=0.2), bus=bus)


def test_missing_and_overrange_samples_are_flagged_and_never_averaged(tmp_path: Path) -> None:
    missing: set[int] = set()
    source = FakeSource(lambda n: None if n in missing else 100.0 + n)
    session = _session(tmp_path, [source])
    session.open()
    measure(session, "ranging")
    first = source.n  # the samples after ranging are testing's: the 2nd is missing, the 3rd overrange
    missing.add(first + 1)
    source.overrange_at = frozenset({first + 2})
    measure(session, "testing", samples=5)
    session.handle(Done())
    testing = session.readings("testing")
    flagged = [r for r in testing if r.flags & (SampleFlag.MISSING | SampleFlag.OVERRANGE)]
    assert [r.flags & (SampleFlag.MISSING | SampleFlag.OVERRANGE) for r in flagged] == \
        [SampleFlag.MISSING, SampleFlag.OVERRANGE] and flagged[0].power_w is None
    rows = parse_spl(session.dir / "run_1" / "spl.txt")
    assert len(rows) == len(testing) and [i for i, r in enumerate(rows) if r["w"] == -1.0] == [1, 2]
    ((watts, _),) = parse_ptd_out(session.dir / "run_1" / "ptd_out.txt")
    good = [r.power_w for r in testing if r not in flagged]
    assert float(watts[1]) == pytest.approx(sum(good) / len(good), abs=1e-6)  # never averaged
    assert (int(watts[4]), int(watts[5]), int(watts[6])) == (len(testing), 2, len(testing) - 2)


def test_an_analyzer_that_vanishes_fails_the_run_within_2_s_and_keeps_samples(tmp_path: Path) -> None:
    bus = InMemoryBus()
    documents = Inbox(bus, topology.RUNS_EXCHANGE, ("#",))
    source = FakeSource()
    session = _session(tmp_path, [source], bus=bus)
    session.open()
    session.handle(StartPhase("ranging"))
    wait_for(lambda: len(session.readings("ranging")) >= 3, what="3 ranging samples")
    lost_at = time.monotonic()
    source.lost.set()
    assert session.wait_ended(2.0), "the run must fail within 2 s"
    assert time.monotonic() - lost_at < 2.0
    assert session.state.value == "failed" and "connection closed" in session.status_reason
    kept = session.readings("ranging")
    assert len(parse_spl(session.dir / "ranging" / "spl.txt")) == len(kept)
    summary = json.loads((session.dir / "power" / "server.json").read_text())
    assert summary["mlpower"]["status"] == "failed" and "lost" in summary["mlpower"]["reason"]
    assert pq.read_table(session.dir / "samples.parquet").num_rows == len(kept)
    docs = documents.until(RunStop)
    stop = docs[-1]
    assert isinstance(stop, RunStop) and stop.status == "failed" and stop.samples == len(kept)
    assert sum(len(d) for d in docs if isinstance(d, SamplePage)) == len(kept)
    with pytest.raises(DirectorError, match="failed"):
        session.handle(StartPhase("testing"))
    bus.close()


def test_two_analyzers_are_merged_by_time(tmp_path: Path) -> None:
    a, b = FakeSource(lambda n: 100.0), FakeSource(lambda n: 20.0)
    session = _session(tmp_path, [a, b])
    run_phases(session, samples=4)
    assert (session.dir / "run_1" / "spl_analyzer_1.txt").is_file()
    assert (session.dir / "ranging" / "spl_analyzer_2.csv").is_file()
    merged = (session.dir / "run_1" / "spl.txt").read_text().splitlines()
    sums = [float(line.split(",")[3]) for line in merged if line]
    assert sums and all(s in (120.0, -1.0) for s in sums) and sums.count(120.0) >= len(sums) - 1
    assert ",Analyzer1,Time," in merged[0] and ",Analyzer2," in merged[0]
    assert parse_ptd_out(session.dir / "run_1" / "ptd_out.txt")[1][0][0].startswith("Watts,20.000000")


def test_refusals(tmp_path: Path) -> None:
    slow = FakeSource(min_interval_s=0.5)
    with pytest.raises(DirectorError, match="below"):
        _session(tmp_path, [slow], run_id="slow").open()
    assert slow.calls == []  # refused before touching the analyzer
    source = FakeSource()
    session = _session(tmp_path, [source], run_id="manual")
    session.open()
    with pytest.raises(PhaseError) as bad:
        session.handle(StartPhase("testing", ManualRanges(-1.0, 2.0)))
    assert bad.value.refused == RefusedRange("voltage", ("-1.0",))
    source.refuse_ranges = True
    with pytest.raises(PhaseError) as refused:
        session.handle(StartPhase("testing", ManualRanges(700.0, 2.0)))
    assert refused.value.refused == RefusedRange("current", ("2.0",))
    assert session.state.value == "idle"  # a refused start leaves the session where it was
    session.handle(Abort("test over"))
    with pytest.raises(DirectorError, match="already exists"):
        _session(tmp_path, [FakeSource()], run_id="manual").open()


def test_an_analyzer_that_refuses_to_start_fails_the_session(tmp_path: Path) -> None:
    source = FakeSource()
    session = _session(tmp_path, [source], run_id="nostart")
    session.open()

    def refuse(mark: str) -> None:
        raise AnalyzerLost("gone before Go")

    source.start = refuse  # type: ignore[method-assign]
    with pytest.raises(PhaseError):
        session.handle(StartPhase("ranging"))
    assert session.state.value == "failed" and "gone before Go" in session.status_reason
    assert json.loads((session.dir / "power" / "server.json").read_text())["mlpower"]["status"] == "failed"
