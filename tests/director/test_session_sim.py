"""Sessions against the WT310E simulator through the real driver (pyvisa over TCP, pyserial over
the pty) and against the PTDaemon emulator: the complete output tree, in the documented formats."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from mlpower.analyzer_sim.simulator import start_ptd, start_simulator
from mlpower.director import ranges
from mlpower.director.session import MeasurementSession, SessionConfig, SessionIdentity
from mlpower.director.session_states import Done, StartPhase
from mlpower.director.sources import open_source
from mlpower.ptdformat import parse_ptd_time
from mlpower.runstream import read_documents
from mlpower.schema import SampleFlag, SamplePage
from mlpower.testing import wait_for

from .drive import measure, run_phases
from .formats import parse_ptd_logs, parse_ptd_out, parse_server_json, parse_server_log, parse_spl, rule_ranges


@pytest.fixture
def sim() -> Iterator[object]:
    handle = start_simulator(port=0, load="constant:250", seed=0, pty=True)
    yield handle
    handle.stop()


def _check_tree(folder: Path, sid: str) -> dict:
    ranging = parse_spl(folder / "ranging" / "spl.txt")
    testing = parse_spl(folder / "run_1" / "spl.txt")
    assert len(ranging) >= 3 and len(testing) >= 3
    assert {r["mark"] for r in ranging} == {f"{sid}_ranging"} and {r["mark"] for r in testing} == {f"{sid}_testing"}
    assert all(abs(r["t"] - time.time()) < 120 for r in ranging + testing), "UTC timestamps"
    ((watts, unc),) = parse_ptd_out(folder / "run_1" / "ptd_out.txt")
    assert int(watts[4]) == len(testing)
    logs = parse_ptd_logs(folder / "power" / "ptd_logs.txt")
    assert any(line.endswith(f": Go with mark '{sid}_ranging'") for line in logs)
    assert any(line.endswith(": Completed test") for line in logs)
    parse_server_log(folder / "power" / "server.log")
    summary = parse_server_json(folder / "power" / "server.json")
    assert summary["session_name"] == sid and summary["debug"] is True
    for name in ("power/ptd_logs.txt", "power/server.log", "ranging/spl.txt", "run_1/spl.txt", "run_1/ptd_out.txt"):
        assert name in summary["results"]
    return {"ranging": ranging, "testing": testing, "summary": summary}


@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_ranging_and_testing_against_the_simulator(sim, tmp_path: Path, transport: str) -> None:  # type: ignore[no-untyped-def]
    resource = f"TCPIP0::127.0.0.1::{sim.port}::SOCKET" if transport == "tcp" else sim.pty_path
    source = open_source(resource, update_interval_s=0.25)
    session = MeasurementSession(SessionIdentity(f"sim-{transport}"), [("analyzer1", source)],
                                 SessionConfig(tmp_path, sample_interval_s=0.25, sleep_s=0.05, debug=True,
                                               page_interval_s=0.5))
    run_phases(session, samples=5, between=lambda: sim.set_load("constant:300"))
    tree = _check_tree(session.dir, session.run_id)
    assert tree["summary"]["mlpower"]["ptdaemon"] == [False] and tree["summary"]["ptd_config"][0]["command"] == []
    # the analyzer itself reports the testing ranges, which must equal the rule applied to ranging/spl.txt
    table = pl.read_parquet(session.dir / "samples.parquet")
    testing = table.filter(pl.col("mode") == "testing")
    expected = rule_ranges(tree["ranging"])
    reported = zip(testing["voltage_range_v"].to_list(), testing["current_range_a"].to_list(), strict=True)
    assert set(reported) == {expected}
    assert session.ranges("testing") == [ranges.testing_ranges(session.readings("ranging"))]
    assert abs(sum(r["w"] for r in tree["testing"]) / len(tree["testing"]) - 300) < 10  # follows the load
    # all samples in the parquet file, the run's metadata with it, the same as the documents
    metadata = pq.read_schema(session.dir / "samples.parquet").metadata
    assert b"mlpower.run_id" in metadata and b"mlpower.sources" in metadata
    pages = [d for d in read_documents(session.dir / "documents.jsonl") if isinstance(d, SamplePage)]
    assert sum(len(p) for p in pages) == table.height == len(tree["ranging"]) + len(tree["testing"])
    assert all(f & SampleFlag.AUTO_RANGE for f in table.filter(pl.col("mode") == "ranging")["flags"].to_list())


def test_ptdaemon_source_runs_the_same_session(tmp_path: Path) -> None:
    log_path = tmp_path / "ptd_data.log"
    ptd = start_ptd(port=0, log_path=log_path, load="constant:200")
    try:
        source = open_source(f"ptd://127.0.0.1:{ptd.port}", data_log=log_path)
        session = MeasurementSession(SessionIdentity("ptd-run"), [("analyzer1", source)],
                                     SessionConfig(tmp_path / "results", sample_interval_s=1.0, sleep_s=0.05,
                                                   debug=True))
        run_phases(session, samples=3)
    finally:
        ptd.stop()
    tree = _check_tree(session.dir, session.run_id)
    commands = [m["cmd"] for m in tree["summary"]["ptd_messages"]]
    sid = session.run_id
    assert commands == [
        "Hello", "Identify", "RR", "SR,V,Auto", "SR,A,Auto", "SR,A,Auto", f"Go,1000,0,{sid}_ranging",
        "Stop", "RL,*,*", "RL", "Uncertainty", "Watts",
        commands[12], commands[13], f"Go,1000,0,{sid}_testing",
        "Watts", "Uncertainty", "Stop", "RL,*,*", "RL", "Uncertainty", "Watts",
        commands[22], commands[23],
    ]
    assert commands[12].startswith("SR,V,") and commands[13].startswith("SR,A,")
    assert commands[22].startswith("SR,V,") and commands[23].startswith("SR,A,")
    replies = {m["cmd"]: m["reply"] for m in tree["summary"]["ptd_messages"]}
    assert replies["Hello"] == "Hello, PTDaemon here!"
    assert replies[f"Go,1000,0,{sid}_testing"].startswith("Starting untimed measurement, maximum 500000 samples")
    # ptd_out.txt carries PTDaemon's own Watts/Uncertainty replies of testing
    assert (session.dir / "run_1" / "ptd_out.txt").read_text().splitlines()[1] == \
        f"Power: {tree['summary']['ptd_messages'][15]['reply']} "
    assert tree["summary"]["mlpower"]["ptdaemon"] == [True]


@pytest.mark.parametrize("fault", ["disconnect", "drop_connection"])
def test_a_vanishing_simulator_fails_the_run_within_2_s(tmp_path: Path, fault: str) -> None:
    sim = start_simulator(port=0, load="constant:250", seed=0)
    try:
        source = open_source(f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", update_interval_s=0.25)
        session = MeasurementSession(SessionIdentity(f"lost-{fault}"), [("analyzer1", source)],
                                     SessionConfig(tmp_path, sample_interval_s=0.25, sleep_s=0.0, debug=True))
        session.open()
        session.handle(StartPhase("ranging"))
        wait_for(lambda: len(session.readings("ranging")) >= 3, what="3 ranging samples")
        gone_at = time.monotonic()
        getattr(sim.faults, fault)()
        assert session.wait_ended(2.0), f"{fault}: the run did not fail within 2 s"
        assert time.monotonic() - gone_at <= 2.0
    finally:
        sim.stop()
    assert session.state.value == "failed" and "lost" in session.status_reason
    kept = parse_spl(session.dir / "ranging" / "spl.txt")
    assert len(kept) >= 3 and len(kept) == len(session.readings("ranging"))
    assert parse_server_json(session.dir / "power" / "server.json")["mlpower"]["status"] == "failed"


def test_two_simulated_analyzers_are_merged_by_timestamp(tmp_path: Path) -> None:
    sims = [start_simulator(port=0, load="constant:120", seed=1), start_simulator(port=0, load="constant:80", seed=2)]
    try:
        sources = [(f"analyzer1_{i}", open_source(f"TCPIP0::127.0.0.1::{s.port}::SOCKET", update_interval_s=0.25))
                   for i, s in enumerate(sims, start=1)]
        session = MeasurementSession(SessionIdentity("two"), sources,
                                     SessionConfig(tmp_path, sample_interval_s=0.25, sleep_s=0.0, debug=True))
        run_phases(session, samples=5)
    finally:
        for s in sims:
            s.stop()
    lines = [line for line in (session.dir / "run_1" / "spl.txt").read_text().splitlines() if line]
    assert len(lines) >= 3
    for line in lines:
        fields = line.split(",")
        a1, a2 = line.index(",Analyzer1,"), line.index(",Analyzer2,")
        part1, part2 = line[a1 + len(",Analyzer1,"):a2], line[a2 + len(",Analyzer2,"):]
        if "missing" in (part1, part2):
            assert fields[3] == "-1.000000"
            continue
        t1 = parse_ptd_time(part1.split(",")[1])
        t2 = parse_ptd_time(part2.split(",")[1])
        assert abs(t1 - t2) <= 0.125 + 1e-3, "paired by time, within half an interval"
        assert float(fields[3]) == pytest.approx(float(part1.split(",")[3]) + float(part2.split(",")[3]), abs=1e-5)
        assert float(fields[3]) == pytest.approx(200, abs=8)
    assert len(parse_ptd_out(session.dir / "run_1" / "ptd_out.txt")) == 2


@pytest.mark.slow
def test_the_director_launches_ptdaemon_per_session(tmp_path: Path) -> None:
    """The official path: PTDaemon (here mlpower's emulator, as a child process) in front of the WT310E."""
    import socket

    from mlpower.director.director import Director

    from .conftest import fast_settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        ptd_port = probe.getsockname()[1]
    sim = start_simulator(port=0, load="constant:150", seed=4)
    try:
        director = Director(fast_settings(tmp_path, analyzer=f"ptd://127.0.0.1:{ptd_port}", sample_interval_s=1.0,
                                          ptd_launch=True, ptd_interface_flag="-n",
                                          ptd_device_port=f"127.0.0.1:{sim.port}"))
        session = director.open_session(run_id="launched")
        for mode in ("ranging", "testing"):
            measure(session, mode, samples=3)  # type: ignore[arg-type]
        session.handle(Done())
    finally:
        sim.stop()
    tree = _check_tree(session.dir, "launched")
    summary = tree["summary"]
    assert summary["ptd_config"][0]["command"][-3:] == ["-n", "49", f"127.0.0.1:{sim.port}"]
    assert summary["ptd_messages"][0] == {"cmd": "Hello", "reply": "Hello, PTDaemon here!"}
    logs = (session.dir / "power" / "ptd_logs.txt").read_text()
    assert "Uncertainty checking for Yokogawa" in logs  # PTDaemon's own console, not ours
    assert all(abs(r["w"] - 150) < 8 for r in tree["testing"])
