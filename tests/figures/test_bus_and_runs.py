"""Rebuilds triggered over the bus (in memory, and once on the real RabbitMQ), and run figures."""

from __future__ import annotations

import json
import queue
from pathlib import Path

import pytest
from mlpower import topology
from mlpower.bus import Delivery, InMemoryBus
from mlpower.figures.catalogue import NAMES
from mlpower.figures.runfigs import load_documents, render_run_figures
from mlpower.schema import FiguresRebuilt, RebuildFigures, RunAnalyzed, RunSummary

from .helpers import service_over_built, wait_for
from .runs import run_summary, write_run


def _analyzed(run_id: str, lab: str, efficiency: float = 40.0) -> RunAnalyzed:
    summary = run_summary(run_id, efficiency)
    return RunAnalyzed(run_id=run_id, lab=lab, sut="sut", summary=summary, verdict="pass", t_utc_s=1.0)


def _listen_for_rebuilt(bus, lab: str) -> queue.Queue:
    events: queue.Queue = queue.Queue()
    spec = topology.QueueSpec(
        "", topology.EVENTS_EXCHANGE, (f"figures_rebuilt.{lab}.#",), durable=False, exclusive=True
    )
    bus.subscribe(spec, lambda message, delivery: events.put(message))
    return events


def test_run_analyzed_on_the_memory_bus(built, data_dir: Path, tmp_path: Path) -> None:
    bus = InMemoryBus()
    results_dir = tmp_path / "results"
    write_run((results_dir / "run-7").mkdir(parents=True) or results_dir / "run-7" / "documents.jsonl", "run-7")
    service = service_over_built(built, data_dir, tmp_path, results_dir=results_dir, bus=bus, lab="memlab")
    try:
        events = _listen_for_rebuilt(bus, "memlab")
        service.listen()
        message = _analyzed("run-7", "memlab")
        bus.publish(message, topology.event_key(message))
        rebuilt = events.get(timeout=60)
        assert isinstance(rebuilt, FiguresRebuilt)
        assert rebuilt.rendered == () and sorted(rebuilt.unchanged) == sorted(NAMES)  # unchanged inputs
        job = service.jobs[rebuilt.job_id]
        assert job.trigger == "run_analyzed" and job.run_id == "run-7"
        run_dir = tmp_path / "figures" / "runs" / "run-7"
        assert {p.name for p in run_dir.iterdir()} >= {
            "run-7_trace.png",
            "run-7_trace.svg",
            "run-7_placement.png",
            "run-7_placement.json",
        }
        placement = json.loads((run_dir / "run-7_placement.json").read_text())
        assert placement["key_values"]["n_public"] > 10 and placement["key_values"]["run_efficiency"] == 40.0

        # The same run analysed again (an analytics replica died before its ack): no second rebuild.
        # Handed over directly, so that it is handled before the command below, which another thread consumes.
        again = _analyzed("run-7", "memlab")
        service.on_message(again, Delivery(topology.event_key(again), topology.EVENTS_EXCHANGE, redelivered=True))
        command = RebuildFigures(figures=("fig9",), mode="corrected", reason="test")
        bus.publish(command, topology.command_key("figures", "default", lab="memlab"))
        rebuilt = events.get(timeout=60)  # jobs run in order: a second run-7 job would come first
        assert rebuilt.mode == "corrected" and rebuilt.rendered == ("fig9",)
        assert [j.run_id for j in service.jobs.values() if j.trigger == "run_analyzed"] == ["run-7"]
        assert bus.dead_letters() == []
    finally:
        service.close()
        bus.close()


@pytest.mark.rabbitmq
def test_rebuild_command_and_run_analyzed_on_rabbitmq(
    built, data_dir: Path, tmp_path: Path, rabbit_bus, unique
) -> None:
    service = service_over_built(
        built, data_dir, tmp_path, results_dir=tmp_path / "results", bus=rabbit_bus, lab=unique
    )
    try:
        events = _listen_for_rebuilt(rabbit_bus, unique)
        service.listen(instance=unique)
        command = RebuildFigures(figures=("fig2", "fig11b"), mode="paper")
        rabbit_bus.publish(command, topology.command_key("figures", unique, lab=unique))
        rebuilt = events.get(timeout=60)
        assert service.jobs[rebuilt.job_id].trigger == "command"  # the lab's own queue: no other lab's job
        assert rebuilt.rendered == () and set(rebuilt.unchanged) == {"fig2", "fig11b"}
        message = _analyzed(f"run-{unique}", unique)
        rabbit_bus.publish(message, topology.event_key(message))
        wait_for(
            lambda: any(j.run_id == f"run-{unique}" and j.state == "done" for j in service.jobs.values()),
            60,
            "the run-analyzed job",
        )
        job = next(j for j in service.jobs.values() if j.run_id == f"run-{unique}")
        assert job.rendered == [] and job.run_figures["notes"]  # no documents for that run: said, not guessed
    finally:
        service.close()


def test_run_figures_from_documents(tmp_path: Path, results) -> None:
    documents = write_run(tmp_path / "documents.jsonl", "run-1")
    trace = load_documents(documents)
    assert trace.benchmark == "resnet" and trace.samples.height == 40
    assert {m["name"] for m in trace.marks} >= {"power_begin", "power_end", "ranging_begin", "testing_end"}
    summary = RunSummary(
        run_id="run-1", source="t", method="m", scenario="Offline", efficiency=1e9, efficiency_unit="samples/J"
    )
    written = render_run_figures(documents, tmp_path / "out", summary=summary, results=results)
    placement = json.loads((tmp_path / "out" / "run-1_placement.json").read_text())
    assert placement["key_values"]["share_of_public_below_run"] == 1.0  # better than every public ResNet result
    assert all(v > 0 for v in placement["series"]["values"])
    assert len(written["files"]) == 5
    # Without an efficiency there is only the trace, and the reason is given.
    alone = render_run_figures(documents, tmp_path / "alone")
    assert [Path(f).name for f in alone["files"]] == ["run-1_trace.png", "run-1_trace.svg"] and alone["notes"]


def test_run_figures_from_a_samples_parquet(tmp_path: Path) -> None:
    import polars as pl
    from mlpower.runstream import pages_to_columns, read_documents
    from mlpower.schema import SamplePage

    documents = write_run(tmp_path / "documents.jsonl", "run-2")
    pages = [d for d in read_documents(documents) if isinstance(d, SamplePage)]
    pl.DataFrame(pages_to_columns(pages)).write_parquet(tmp_path / "run-2.parquet")
    written = render_run_figures(tmp_path / "run-2.parquet", tmp_path / "out")
    assert [Path(f).name for f in written["files"]] == ["run-2_trace.png", "run-2_trace.svg"]


def test_a_broken_documents_line_names_file_and_line(tmp_path: Path) -> None:
    from mlpower.figures.errors import DataError

    documents = write_run(tmp_path / "documents.jsonl", "run-3")
    with open(documents, "ab") as handle:
        handle.write(b"{not json\n")
    lines = documents.read_text().count("\n")
    with pytest.raises(DataError, match=rf"documents.jsonl:{lines}"):
        load_documents(documents)
