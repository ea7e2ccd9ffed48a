"""The soak: consecutive bus-mode runs on a lab of real processes (private RabbitMQ node, simulator,
director, SUT agent), each hit by one fault in the middle of testing, drawn at random from a seed.

Every run must end as its fault dictates, with the reason naming the cause:

=================  =========  ==============================================
fault              status     reason
=================  =========  ==============================================
broker restart     success    (none: nothing is lost, the run completes)
agent kill         failed     the agent missed 3 heartbeats, by name
analyzer drop      failed     the analyzer was lost
director restart   aborted    director restarted (the new director closes it)
=================  =========  ==============================================

and for every run: every document on disk reached the bus exactly once after dedupe, and so every
sample (the run's ``run.stop`` count, the pages on disk and the pages received agree); the run's
workload is gone once the run has ended; and after the soak no process of the lab's tree is left.

``MLPOWER_SOAK_RUNS`` (default 20) and ``MLPOWER_SOAK_SEED`` (default 1414) set its size and draw;
the summary goes to the reliability summary at the end of the test session.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.buslab import LOADGEN, BusLab
from tests.reliability.ledger import LEDGER
from tests.reliability.procs import Broker, check_no_crash, left_alive, pid_alive, simulator, wait_until

pytestmark = pytest.mark.slow

RUNS = int(os.environ.get("MLPOWER_SOAK_RUNS", "20"))
SEED = int(os.environ.get("MLPOWER_SOAK_SEED", "1414"))
BUDGET_S = 600.0
FAULTS = ("broker restart", "agent kill", "analyzer drop", "director restart")
STOPPED = ("analyzer drop", "director restart")  # the run ends while the agent still runs its workload


@pytest.fixture
def broker(unique: str) -> Iterator[Broker]:
    why_not = Broker.available()
    if why_not is not None:
        pytest.skip(f"no private RabbitMQ node here: {why_not}")
    node = Broker(f"mlpsoak{unique}")
    try:
        yield node.launch()
    finally:
        node.shutdown()


def draw(runs: int, seed: int) -> list[str]:
    """One fault per run: each kind equally often (as near as ``runs`` allows), in a seeded order."""
    faults = [FAULTS[i % len(FAULTS)] for i in range(runs)]
    random.Random(seed).shuffle(faults)
    return faults


def expected(lab: BusLab, fault: str) -> tuple[str, Callable[[str], bool]]:
    return {
        "broker restart": ("success", lambda reason: reason == ""),
        "agent kill": ("failed", lambda reason: reason.startswith(f"SUT agent {lab.sut!r} missed 3 heartbeats")),
        "analyzer drop": ("failed", lambda reason: reason.startswith("analyzer analyzer1 lost")),
        "director restart": ("aborted", lambda reason: reason.startswith("director restarted")),
    }[fault]


def inject(lab: BusLab, fault: str) -> None:
    LEDGER.fault(f"soak: {fault}")
    if fault == "broker restart":
        lab.restart_broker(away_s=1.0)
    elif fault == "agent kill":
        workload = lab.kill_agent()
        assert workload, "the agent ran no workload when it was killed"
        wait_until(lambda: not any(pid_alive(pid) for pid in workload), 10, "the workload to die with its agent")
    elif fault == "analyzer drop":
        lab.drop_analyzer(True)
    elif fault == "director restart":
        lab.kill_director()
        lab.start_director()  # closes the killed run (aborted) and tells the agent to stop its workload


def told_to_stop(lab: BusLab, run_id: str) -> bool:
    """The agent's log says StopWorkload found this run's workload running and stopped it."""
    assert lab.agent is not None
    return any(line.endswith(": stopping its workload") and f"StopWorkload for run '{run_id}'" in line
               for line in lab.agent.log().splitlines())


def recover(lab: BusLab, fault: str) -> None:
    if fault == "agent kill":
        lab.start_agent()
    elif fault == "analyzer drop":
        lab.drop_analyzer(False)


def test_soak_of_bus_mode_runs_each_with_one_fault(broker: Broker, tmp_path: Path, unique: str) -> None:
    began = time.monotonic()
    faults = draw(RUNS, SEED)
    ended: Counter[str] = Counter()
    samples = 0
    with simulator(tmp_path / "logs") as sim:
        lab = BusLab(broker, sim, tmp_path, f"lab{unique}", f"sut{unique}", heartbeat_s=1.0, workload_s=8.0)
        try:
            lab.start()
            for number, fault in enumerate(faults, 1):
                run_id, run_dir = lab.start_run()
                lab.workload_running(run_id)
                inject(lab, fault)
                completed = lab.wait_end(run_id, timeout_s=60)
                status, reason_ok = expected(lab, fault)
                assert completed.status == status and reason_ok(completed.reason), \
                    f"run {number} ({fault}): {completed.status} {completed.reason!r}"
                ended[f"{fault}: {completed.status}"] += 1
                samples += lab.check_exactly_once(run_id, run_dir)
                lab.look()
                wait_until(lambda run_id=run_id: not [line for line in left_alive(lab.seen)  # type: ignore[misc]
                                                      if LOADGEN in line and run_id in line],
                           15, f"run {number}'s workload to end with its run")
                if fault in STOPPED:  # the workload (8 s) did not just run out: StopWorkload ended it
                    wait_until(lambda run_id=run_id: told_to_stop(lab, run_id), 15,  # type: ignore[misc]
                               f"run {number}: the agent to stop the workload on StopWorkload")
                recover(lab, fault)
            elapsed_s = time.monotonic() - began
        finally:
            lab.stop()
        check_no_crash(*lab.procs)
    left = left_alive(lab.seen)  # the simulator too, now stopped
    assert left == [], "processes left behind:\n" + "\n".join(left)
    LEDGER.samples(samples, samples)
    LEDGER.note(f"soak: {RUNS} bus-mode runs, seed {SEED}, {elapsed_s:.0f} s; "
                + ", ".join(f"{kind} x{count}" for kind, count in sorted(ended.items())))
    LEDGER.note(f"soak: every run's documents and samples exactly once ({samples} samples); "
                f"processes of the lab seen {len(lab.seen)}, left 0; crashes 0")
    assert sum(ended.values()) == RUNS
    assert elapsed_s < BUDGET_S, f"the soak took {elapsed_s:.0f} s (budget {BUDGET_S:.0f} s)"
