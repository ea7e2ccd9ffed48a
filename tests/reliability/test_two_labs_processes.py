"""Two labs of real processes on one broker and one vhost (the suite's), with the same SUT name:
each lab's director, agent and analytics run a bus-mode run at the same time, and each lab's
analytics lists only its own run while each lab's collector saw only its own documents."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlpower import topology

from tests.reliability.buslab import BusLab
from tests.reliability.procs import http, simulator, start_mlpower, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

SUT = "sut1"
ANALYTICS_READY = r"analytics HTTP on http://[^:\s]+:(?P<http>\d+)"


def test_two_labs_of_processes_on_one_vhost_each_see_only_their_own_runs(amqp_url: str, unique: str,
                                                                          tmp_path: Path) -> None:
    broker = SimpleNamespace(url=amqp_url)  # the suite's broker: other labs (tests) may be on it too
    names = (f"pa{unique}", f"pb{unique}")
    with ExitStack() as stack:
        labs: dict[str, BusLab] = {}
        analytics: dict[str, int] = {}
        for name in names:
            root = tmp_path / name
            sim = stack.enter_context(simulator(root / "logs"))
            labs[name] = BusLab(broker, sim, root, name, SUT, workload_s=2.0)  # type: ignore[arg-type]
            stack.callback(labs[name].stop)
            labs[name].start()
            proc = start_mlpower(f"analytics-{name}", ["analytics"], log_dir=root / "logs", ready=ANALYTICS_READY,
                                 env={"AMQP_URL": amqp_url, "MLPOWER_LAB": name, "MLPOWER_ANALYTICS_PORT": "0",
                                      "MLPOWER_RESULTS_DIR": str(root / "results")})
            stack.callback(proc.stop)
            analytics[name] = int(proc.info["http"])
            stack.callback(lambda name=name: _delete_lab_queues(labs[name], name))
        runs = {name: lab.start_run()[0] for name, lab in labs.items()}  # both at once
        for name, lab in labs.items():
            stop = lab.wait_end(runs[name], timeout_s=120)
            assert stop.status == "success", stop.reason
        for name in names:
            url = f"http://127.0.0.1:{analytics[name]}/runs"
            listed = wait_until(lambda url=url: (rows := http("GET", url)[1]) and rows, 120, f"{name}'s run analysed")
            assert [row["run_id"] for row in listed] == [runs[name]], (name, listed)
            collector = labs[name].collector
            assert collector is not None
            assert set(collector.documents) == {runs[name]}, (name, sorted(collector.documents))


def _delete_lab_queues(lab: BusLab, name: str) -> None:
    bus = lab._bus
    if bus is None:
        return
    for queue in [*(q.name for q in topology.run_shard_queues("analytics", name)), f"mlpower.{name}.analytics.events",
                  f"mlpower.{name}.director-{SUT}.events", topology.dead_letter_queue(name)]:
        try:
            bus.delete_queue(queue)
        except Exception:  # a queue this lab never declared: nothing to delete
            pass
