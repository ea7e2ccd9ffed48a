"""MeasurementSession with in-memory analyzers: flags, a vanishing analyzer, several analyzers, refusals."""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlpower import topology
from mlpower.bus import InMemoryBus
from mlpower.director.errors import DirectorError
from mlpower.director.runner import MeasurementSession, PhaseError, SessionConfig, SessionIdentity
from mlpower.schema import RunStop, SampleFlag, SamplePage

from .fakes import FakeSource
from .formats import parse_ptd_out, parse_spl


def _session(tmp_path: Path, sources: list[FakeSource], bus: InMemoryBus | None = None,
             run_id: str = "run1") -> MeasurementSession:
    return MeasurementSession(SessionIdentity(run_id),
                              [(f"a{i}", s) for i, s in enumerate(sources, start=1)],
                              SessionConfig(tmp_path, sample_interval_s=0.1, sleep_s=0.0, debug=True,
                                            page_interval_s=0.2), bus=bus)


def test_missing_and_overrange_samples_are_flagged_and_never_averaged(tmp_path: Path) -> None:
    # ranging takes about 3 samples; samples 5 and 6 (NaN, overrange) fall into testing
    source = FakeSource(lambda n: None if n == 5 else 100.0 + n, overrange_at=frozenset({6}))
    session = _session(tmp_path, [source])
    session.open()
    session.start("ranging")
    time.sleep(0.25)
    session.stop("ranging")
    session.start("testing")
    time.sleep(0.75)
    session.stop("testing")
    session.done()
    testing = session.readings("testing")
    assert len(testing) >= 5
    rows = parse_spl(session.dir / "run_1" / "spl.txt")
    assert source.n - len(testing) <= 5, "the flagged samples must be in testing"
    missing = [r for r in testing if r.flags & SampleFlag.MISSING]
    overrange = [r for r in testing if r.flags & SampleFlag.OVERRANGE]
    assert len(missing) == 1 and missing[0].power_w is None and len(overrange) == 1
    assert sum(1 for r in rows if r["w"] == -1.0) == 2  # written as "not available", so never averaged
    ((watts, _),) = parse_ptd_out(session.dir / "run_1" / "ptd_out.txt")
    good = [r.power_w for r in testing if not r.flags & (SampleFlag.MISSING | SampleFlag.OVERRANGE)]
    assert float(watts[1]) == pytest.approx(sum(good) / len(good), abs=1e-6)


def test_an_analyzer_that_vanishes_fails_the_run_within_2_s_and_keeps_samples(tmp_path: Path, unique: str) -> None:
    bus = InMemoryBus()
    received: queue.Queue = queue.Queue()
    bus.subscribe(topology.QueueSpec(f"t-{unique}", topology.RUNS_EXCHANGE, ("#",)),
                  lambda m, d: received.put(m))
    source = FakeSource()
    session = _session(tmp_path, [source], bus=bus)
    session.open()
    session.start("ranging")
    time.sleep(0.35)
    lost_at = time.monotonic()
    source.lost.set()
    assert session.wait_ended(2.0), "the run must fail within 2 s"
    assert time.monotonic() - lost_at < 2.0
    assert session.state.value == "failed" and "connection closed" in session.status_reason
    kept = session.readings("ranging")
    assert len(kept) >= 3
    assert len(parse_spl(session.dir / "ranging" / "spl.txt")) == len(kept)
    summary = json.loads((session.dir / "power" / "server.json").read_text())
    assert summary["mlpower"]["status"] == "failed" and "lost" in summary["mlpower"]["reason"]
    assert pq.read_table(session.dir / "samples.parquet").num_rows == len(kept)
    documents = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not any(isinstance(d, RunStop) for d in documents):
        try:
            documents.append(received.get(timeout=0.1))
        except queue.Empty:
            pass
    stop = next(d for d in documents if isinstance(d, RunStop))
    assert stop.status == "failed" and stop.samples == len(kept)
    assert sum(len(d) for d in documents if isinstance(d, SamplePage)) == len(kept)
    with pytest.raises(Exception, match="failed"):
        session.start("testing")
    bus.close()


def test_two_analyzers_are_merged_by_time(tmp_path: Path) -> None:
    a, b = FakeSource(lambda n: 100.0), FakeSource(lambda n: 20.0)
    session = _session(tmp_path, [a, b])
    session.open()
    session.start("ranging")
    time.sleep(0.45)
    session.stop("ranging")
    session.start("testing")
    time.sleep(0.45)
    session.stop("testing")
    session.done()
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
        session.start("testing", manual_ranges=(-1.0, 2.0))
    assert bad.value.reply.startswith("Error setting voltage range: [")
    source.refuse_ranges = True
    with pytest.raises(PhaseError) as refused:
        session.start("testing", manual_ranges=(700.0, 2.0))
    assert refused.value.reply.startswith("Error setting current range: [")
    assert session.state.value == "idle"  # a refused start leaves the session where it was
    session.abort("test over")
    with pytest.raises(DirectorError, match="already exists"):
        _session(tmp_path, [FakeSource()], run_id="manual").open()


def test_an_analyzer_that_refuses_to_start_fails_the_session(tmp_path: Path) -> None:
    source = FakeSource()
    session = _session(tmp_path, [source], run_id="nostart")
    session.open()
    source.lost.set()

    def refuse(mark: str) -> None:
        from mlpower.director.errors import AnalyzerLost

        raise AnalyzerLost("gone before Go")

    source.start = refuse  # type: ignore[method-assign]
    with pytest.raises(PhaseError):
        session.start("ranging")
    assert session.state.value == "failed" and "gone before Go" in session.status_reason
    assert json.loads((session.dir / "power" / "server.json").read_text())["mlpower"]["status"] == "failed"
