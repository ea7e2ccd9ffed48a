"""Fault: the director is killed (SIGKILL) in the middle of a run and started again.

A real ``mlpower sim`` and ``mlpower director`` on the real broker. The killed run's folder has
no run.stop; the restarted director (same results folder) must close it as aborted with a
"director restarted" reason, keep every stored sample (documents.jsonl pages = samples.parquet
rows = the stop's count), publish the end on the bus (exactly the documents on disk, after
dedupe) and then take new runs.
"""

from __future__ import annotations

import json
import signal
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
    sim_resource,
    simulator,
    start_director,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]


def _pages_on_disk(run_dir: Path) -> int:
    path = run_dir / "documents.jsonl"
    return path.read_bytes().count(b'"type":"run.page"') if path.exists() else 0


def test_director_killed_mid_run_is_closed_as_aborted_on_restart(amqp_url: str, tmp_path: Path,
                                                                 unique: str) -> None:
    lab, logs = f"lab{unique}", tmp_path / "logs"
    bus = RabbitMQBus(amqp_url, client_name="fault-director")
    collector = RunCollector(bus, lab).start()
    try:
        with simulator(logs) as sim:
            env = director_env(analyzer=sim_resource(sim), results=tmp_path / "results", amqp_url=amqp_url, lab=lab,
                               MLPOWER_SPOOL_DIR=str(tmp_path / "spool"))
            first = start_director(env, logs, name="director1")
            try:
                status, accepted = http("POST", director_url(first, "/runs"),
                                        {"phase_s": 1.0, "sample_interval_s": 0.1})
                assert status == 202, accepted
                run_id, run_dir = accepted["run_id"], Path(accepted["output_dir"])
                # killed in testing: ranging's files were written, testing's were not
                wait_until(lambda: _pages_on_disk(run_dir) >= 8 and (run_dir / "ranging" / "spl.txt").exists(), 15,
                           "the run to be in testing")
                LEDGER.fault("director killed mid-run")
                first.kill(signal.SIGKILL)
                assert first.wait(5) == -signal.SIGKILL
            finally:
                first.stop()
            before = (run_dir / "documents.jsonl").read_bytes()
            assert b'"type":"run.stop"' not in before and not (run_dir / "samples.parquet").exists()
            kept = file_documents(run_dir)  # what the killed process stored (a torn last line would raise)

            second = start_director(env, logs, name="director2")
            try:
                completed = collector.wait_stopped(run_id, timeout_s=10)
                assert completed.status == "aborted" and completed.reason.startswith("director restarted"), completed
                written = file_documents(run_dir)
                stop = written[-1]
                assert written[:-1] == kept and isinstance(stop, RunStop), "the stored documents stay as they were"
                assert stop.status == "aborted" and stop.reason == completed.reason and stop.seq == kept[-1].seq + 1
                samples = page_samples(kept)
                assert samples == stop.samples > 0 and stop.pages == sum(1 for d in kept if d.type == "run.page")
                table = pl.read_parquet(run_dir / "samples.parquet")
                assert table.height == samples
                assert table.filter(pl.col("mode") == "testing").height > 0
                summary = json.loads((run_dir / "power" / "server.json").read_text(encoding="utf-8"))
                assert summary["mlpower"]["status"] == "aborted" and summary["session_name"] == run_id
                assert (run_dir / "run_1" / "spl.txt").read_text().count(f"Mark,{run_id}_testing") == \
                    table.filter(pl.col("mode") == "testing").height
                status, found = http("GET", director_url(second, f"/runs/{run_id}"))
                assert status == 200 and found["status"] == "aborted", found
                got = collector.wait_all(run_id, len(written), timeout_s=10)
                assert sorted(got) == [d.seq for d in written] and all(got[d.seq] == d for d in written)
                LEDGER.samples(samples, page_samples(got.values()))

                # the restarted director measures again
                status, accepted = http("POST", director_url(second, "/runs"),
                                        {"phase_s": 0.5, "sample_interval_s": 0.1})
                assert status == 202, accepted
                assert collector.wait_stopped(accepted["run_id"], timeout_s=10).status == "success"
            finally:
                second.stop()
            check_no_crash(second)
    finally:
        collector.close()
        bus.close()
