"""Fault: the analyzer disappears (the simulator's USB-style ``disconnect``) and comes back.

A real ``mlpower sim`` and ``mlpower director`` on the real broker. Mid-run the meter vanishes:
the run must fail within 2 s with a reason naming the lost analyzer; every sample taken so far
stays in documents.jsonl, samples.parquet and on the bus (the same count everywhere); once the
meter is back, the next run on the same director and simulator processes succeeds.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest
from mlpower.rabbitmq import RabbitMQBus
from mlpower.schema import RunStop

from tests.reliability.collect import RunCollector, file_documents, page_samples
from tests.reliability.ledger import LEDGER
from tests.reliability.procs import (
    check_no_crash,
    director_env,
    director_url,
    http,
    sim_fault,
    sim_resource,
    simulator,
    start_director,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]


def _pages_on_disk(run_dir: Path) -> int:
    path = run_dir / "documents.jsonl"
    return path.read_bytes().count(b'"type":"run.page"') if path.exists() else 0


def _check_samples_kept(run_dir: Path, collector: RunCollector, run_id: str) -> tuple[int, int]:
    """documents.jsonl, samples.parquet and the bus hold the same samples; (written, received)."""
    written = file_documents(run_dir)
    assert isinstance(written[-1], RunStop)
    got = collector.wait_all(run_id, len(written), timeout_s=10)
    assert sorted(got) == [d.seq for d in written] and all(got[d.seq] == d for d in written)
    samples, received = page_samples(written), page_samples(got.values())
    assert samples == written[-1].samples == received
    assert pl.read_parquet(run_dir / "samples.parquet").height == samples
    LEDGER.samples(samples, received)
    return samples, received


def test_analyzer_disappears_run_fails_fast_samples_kept_next_run_works(amqp_url: str, tmp_path: Path,
                                                                        unique: str) -> None:
    lab = f"lab{unique}"
    bus = RabbitMQBus(amqp_url, client_name="fault-analyzer")
    collector = RunCollector(bus, lab).start()
    try:
        with simulator(tmp_path / "logs") as sim:
            env = director_env(analyzer=sim_resource(sim), results=tmp_path / "results", amqp_url=amqp_url, lab=lab)
            director = start_director(env, tmp_path / "logs")
            try:
                status, accepted = http("POST", director_url(director, "/runs"),
                                        {"phase_s": 3.0, "sample_interval_s": 0.1})
                assert status == 202, accepted
                run_id, run_dir = accepted["run_id"], Path(accepted["output_dir"])
                wait_until(lambda: _pages_on_disk(run_dir) >= 3, 15, "the first pages of the run")

                LEDGER.fault("analyzer disconnected mid-run")
                injected = time.time()
                sim_fault(sim, "disconnect", on=True)
                completed = collector.wait_stopped(run_id, timeout_s=5)
                noticed = time.time()
                assert completed.status == "failed"
                assert "analyzer analyzer1 lost" in completed.reason, completed.reason
                assert completed.t_utc_s - injected < 2.0 and noticed - injected < 2.5, \
                    f"failed {completed.t_utc_s - injected:.2f} s after the analyzer vanished"
                assert _check_samples_kept(run_dir, collector, run_id)[0] > 0
                status, found = http("GET", director_url(director, f"/runs/{run_id}"))
                assert status == 200 and found["status"] == "failed" and "lost" in found["reason"], found

                sim_fault(sim, "disconnect", on=False)  # the meter is back, with its power-on settings
                status, accepted = http("POST", director_url(director, "/runs"),
                                        {"phase_s": 1.0, "sample_interval_s": 0.1})
                assert status == 202, accepted
                next_id, next_dir = accepted["run_id"], Path(accepted["output_dir"])
                completed = collector.wait_stopped(next_id, timeout_s=15)
                assert completed.status == "success", completed.reason
                assert _check_samples_kept(next_dir, collector, next_id)[0] >= 10
            finally:
                director.stop()
            check_no_crash(director, sim)
    finally:
        collector.close()
        bus.close()
