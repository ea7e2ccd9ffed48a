"""Two whole labs at once on one broker and one vhost, with the same SUT name: each measures its
own run and sees only that one (director, analytics, figures), and neither leaves a message in
the other's queues."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from mlpower import topology
from mlpower.lab.embedded import EmbeddedLab, LabOptions
from mlpower.rabbitmq import RabbitMQBus
from mlpower.schema import StartRun, WorkloadRequest
from mlpower.testing import wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

SUT = "sut1"  # the same in both labs: their command keys must still not meet


def _lab_queues(lab: str) -> list[str]:
    """Every durable queue an embedded lab declares (deleted after the test)."""
    return [*(q.name for q in topology.run_shard_queues("analytics", lab)), f"mlpower.{lab}.analytics.events",
            f"mlpower.{lab}.figures.events",
            f"mlpower.{lab}.director-{SUT}.commands", f"mlpower.{lab}.director-{SUT}.events",
            f"mlpower.{lab}.agent-{SUT}.commands",
            topology.dead_letter_queue(lab)]


@pytest.fixture
def labs(amqp_url: str, unique: str, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, EmbeddedLab]]:
    # Two directors in one process share pyvisa's resource manager; each one's idle-analyzer probe
    # opens and closes its meter while the other's session reads (closing one must not close the other).
    started: dict[str, EmbeddedLab] = {}
    with ExitStack() as stack:
        for name in (f"a{unique}", f"b{unique}"):
            bus = RabbitMQBus(amqp_url, client_name=f"pytest-{name}", lab=name)
            stack.callback(bus.close)
            stack.callback(lambda bus=bus, name=name: [bus.delete_queue(q) for q in _lab_queues(name)])
            options = LabOptions(results_dir=tmp_path / name, lab=name, sut=SUT, sample_interval_s=0.5,
                                 analyzer_sleep_s=0.2)
            started[name] = stack.enter_context(EmbeddedLab(options, bus))
        yield started


def test_two_labs_on_one_vhost_each_see_only_their_own_runs(labs: dict[str, EmbeddedLab]) -> None:
    for name, lab in labs.items():
        lab.bus.publish(StartRun(sut=SUT, run_id=f"run-{name}", workload=WorkloadRequest(
            name="builtin:offline", duration_s=2.0), sample_interval_s=0.5),
            topology.command_key("director", SUT, lab=name))
    for name, lab in labs.items():
        wait_for(lambda lab=lab: len(lab.analytics.store) >= 1, 240, what=f"lab {name}'s run analysed")
    for name, lab in labs.items():
        assert [row["run_id"] for row in lab.analytics.store.rows()] == [f"run-{name}"], name
        assert [run["run_id"] for run in lab.director.director.list_runs()] == [f"run-{name}"], name
        assert (lab.options.results_dir / f"run-{name}" / "documents.jsonl").is_file()
        analyzed = lab.analytics.store.get(f"run-{name}")
        assert analyzed is not None and analyzed.lab == name and analyzed.summary.avg_power_w
        wait_for(lambda lab=lab: lab.figures.jobs and all(j.done.is_set() for j in lab.figures.jobs.values()), 120,
                 what=f"lab {name}'s figures")
        assert {job.run_id for job in lab.figures.jobs.values()} == {f"run-{name}"}, name
        assert lab.bus.dead_letter_depth() == 0, lab.bus.dead_letters(keep=True)
