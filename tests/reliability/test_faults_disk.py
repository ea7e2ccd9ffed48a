"""Fault: the results disk fills up in the middle of a run.

The director's results folder is a real, tiny file system (a 256 KiB tmpfs the test mounts as
root and always unmounts); mid-run the test fills it to the last byte. The run must fail with a
reason saying the disk is full; documents.jsonl must still parse line by line (no torn line),
everything written before must be intact, and the bus must still carry every document: the
ones stored on disk unchanged, then the rest of the run up to its run.stop. Once space is
freed, the same director process measures again.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

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
DISK_BYTES = 256 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0755", "tmpfs", str(mount_point)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)  # the finaliser, whatever happened


def _fill(disk: Path) -> Path:
    """Write a filler file until the file system refuses with ENOSPC; returns the filler."""
    filler = disk / "filler.bin"
    with open(filler, "wb", buffering=0) as handle:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    handle.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    return filler


def _pages_on_disk(run_dir: Path) -> int:
    path = run_dir / "documents.jsonl"
    return path.read_bytes().count(b'"type":"run.page"') if path.exists() else 0


def test_results_disk_full_fails_the_run_and_corrupts_nothing(small_disk: Path, amqp_url: str, tmp_path: Path,
                                                              unique: str) -> None:
    lab, logs = f"lab{unique}", tmp_path / "logs"
    results = small_disk / "results"
    bus = RabbitMQBus(amqp_url, client_name="fault-disk")
    collector = RunCollector(bus, lab).start()
    try:
        with simulator(logs) as sim:
            env = director_env(analyzer=sim_resource(sim), results=results, amqp_url=amqp_url, lab=lab,
                               MLPOWER_SPOOL_DIR=str(tmp_path / "spool"))
            director = start_director(env, logs)
            try:
                status, accepted = http("POST", director_url(director, "/runs"),
                                        {"phase_s": 3.0, "sample_interval_s": 0.1})
                assert status == 202, accepted
                run_id, run_dir = accepted["run_id"], Path(accepted["output_dir"])
                wait_until(lambda: (run_dir / "ranging" / "spl.txt").exists() and _pages_on_disk(run_dir) >= 17, 15,
                           "the run to be in testing")
                ranging_spl = (run_dir / "ranging" / "spl.txt").read_bytes()

                LEDGER.fault("results disk full mid-run")
                filler = _fill(small_disk)
                completed = collector.wait_stopped(run_id, timeout_s=10)
                assert completed.status == "failed", completed
                assert "results disk full" in completed.reason and "No space left on device" in completed.reason, \
                    completed.reason
                status, found = http("GET", director_url(director, "/status"))
                assert status == 200 and found["run"]["state"] == "failed" and not found["busy"], found
                assert "results disk full" in found["run"]["reason"]
                status, found = http("GET", director_url(director, f"/runs/{run_id}"))
                assert status == 200 and found["status"] == "failed" and found["reason"] == completed.reason, found

                # nothing written before is corrupted: every stored line parses, the earlier files are intact
                stored = file_documents(run_dir)
                assert stored and stored[0].type == "run.start"
                assert (run_dir / "ranging" / "spl.txt").read_bytes() == ranging_spl
                assert not list(run_dir.rglob("*.tmp")), "half-written temporary files were left behind"
                # the bus has the whole run: the stored documents unchanged, then the rest up to run.stop
                stop = collector.stop_document(run_id) or wait_until(lambda: collector.stop_document(run_id), 10,
                                                                    "the run.stop on the bus")
                assert isinstance(stop, RunStop) and stop.status == "failed" and stop.reason == completed.reason
                got = collector.wait_all(run_id, stop.seq + 1, timeout_s=10)
                assert sorted(got) == list(range(stop.seq + 1))
                assert all(got[d.seq] == d for d in stored)
                assert len(stored) < len(got), "the disk filled mid-run: some documents exist only on the bus"
                received = page_samples(got.values())
                assert received == stop.samples >= page_samples(stored) > 0
                LEDGER.samples(stop.samples, received)

                # space freed: the same director (and simulator) measure again
                filler.unlink()
                status, accepted = http("POST", director_url(director, "/runs"),
                                        {"phase_s": 0.5, "sample_interval_s": 0.1})
                assert status == 202, accepted
                again = collector.wait_stopped(accepted["run_id"], timeout_s=10)
                assert again.status == "success", again.reason
                assert isinstance(file_documents(Path(accepted["output_dir"]))[-1], RunStop)
            finally:
                director.stop()
            check_no_crash(director)
    finally:
        collector.close()
        bus.close()
    assert os.path.ismount(small_disk)  # unmounted only by the fixture's finaliser
