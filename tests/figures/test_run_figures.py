"""Run figures: the efficiency from the run's own analysis, a legend naming everything drawn, and the
figures served over the API beside the paper figures (run names only, confined to their folders)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from mlpower.figures import legibility
from mlpower.figures.app import create_app
from mlpower.figures.cli import app as cli_app
from mlpower.figures.errors import DataError
from mlpower.figures.render import style_context
from mlpower.figures.runfigs import TRACE_LOOK, load_documents, read_run_summary, render_run_figures, trace_figure
from mlpower.figures.service import FiguresService
from mlpower.schema import RunAnalyzed, RunSummary
from typer.testing import CliRunner

from .helpers import wait_for
from .runs import run_summary, write_run

EFFICIENCY = 37.5


def _summary(run_id: str) -> RunSummary:
    return run_summary(run_id, EFFICIENCY)


def _run_folder(root: Path, run_id: str, *, analysis: str | None = "demo") -> Path:
    """A run folder as the lab leaves it: documents.jsonl and, optionally, its compliance.json."""
    folder = root / run_id
    folder.mkdir(parents=True)
    write_run(folder / "documents.jsonl", run_id)
    if analysis == "demo":  # mlpower demo: the RunAnalyzed event as written by lab.report.write_report
        analyzed = RunAnalyzed(run_id=run_id, summary=_summary(run_id), verdict="pass", t_utc_s=1.0)
        (folder / "compliance.json").write_text(json.dumps(json.loads(analyzed.model_dump_json()), indent=2))
    elif analysis == "check":  # mlpower check --json: a CheckReport, also with the summary
        report = {"run_dir": str(folder), "verdict": "pass", "uses_ptdaemon": False, "findings": []}
        report["summary"] = json.loads(_summary(run_id).model_dump_json())
        (folder / "compliance.json").write_text(json.dumps(report))
    return folder


@pytest.mark.parametrize("analysis", ["demo", "check"])
def test_figures_run_takes_the_efficiency_from_the_runs_analysis(tmp_path: Path, data_dir: Path, analysis: str) -> None:
    folder = _run_folder(tmp_path / "results", "run-5", analysis=analysis)
    result = CliRunner().invoke(
        cli_app, ["run", str(folder), "--out", str(tmp_path / "out"), "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    assert f"efficiency {EFFICIENCY:g} samples/J from {folder / 'compliance.json'}" in result.output
    placement = json.loads((tmp_path / "out" / "run-5_placement.json").read_text())
    assert placement["key_values"]["run_efficiency"] == EFFICIENCY
    assert any("compliance.json" in note and "window average" in note for note in placement["notes"])
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        f"run-5_{kind}.{fmt}" for kind in ("trace", "placement") for fmt in ("png", "svg")
    } | {"run-5_placement.json"}


def test_an_explicit_efficiency_overrides_and_no_analysis_means_no_placement(tmp_path: Path, data_dir: Path) -> None:
    folder = _run_folder(tmp_path, "run-6", analysis=None)
    written = render_run_figures(folder / "documents.jsonl", tmp_path / "a", data_dir=data_dir)
    assert [Path(f).name for f in written["files"]] == ["run-6_trace.png", "run-6_trace.svg"]
    assert any("compliance.json" in note for note in written["notes"])
    result = CliRunner().invoke(
        cli_app, ["run", str(folder), "--out", str(tmp_path / "b"), "--efficiency", "12", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b" / "run-6_placement.json").read_text())["key_values"]["run_efficiency"] == 12.0


def test_a_bad_analysis_is_a_clear_error_without_its_content(tmp_path: Path) -> None:
    folder = _run_folder(tmp_path, "run-7", analysis=None)
    analysis = folder / "compliance.json"
    analysis.write_text('{"summary": {"run_id": "run-7",\n "secret-looking": tru')
    with pytest.raises(DataError, match=r"compliance.json:2: not JSON") as error:
        read_run_summary(analysis)
    assert "secret-looking" not in str(error.value)
    analysis.write_text(json.dumps({"verdict": "pass"}))
    with pytest.raises(DataError, match="holds no run summary"):
        read_run_summary(analysis)
    bad = {"run_id": "run-7", "source": "s", "method": "m", "efficiency": "lots"}
    analysis.write_text(json.dumps({"summary": bad}))
    with pytest.raises(DataError, match=r"summary.efficiency"):
        read_run_summary(analysis)
    other = _summary("another-run")
    analysis.write_text(json.dumps({"summary": json.loads(other.model_dump_json())}))
    with pytest.raises(DataError, match="analysis of run 'another-run', not of 'run-7'"):
        render_run_figures(folder / "documents.jsonl", tmp_path / "out")


def test_the_trace_legend_names_every_line_band_and_marker(tmp_path: Path) -> None:
    trace = load_documents(write_run(tmp_path / "documents.jsonl", "run-8"))
    with style_context(TRACE_LOOK["font_size"]):
        figure = trace_figure(trace)
        drawn = set()
        for ax in figure.axes:
            for artist in ax.get_children():
                if isinstance(artist, (Line2D, PolyCollection, Rectangle)) and artist is not ax.patch:
                    if artist.get_visible() and artist.get_transform() is not None:
                        drawn.add(artist.get_label())
        drawn.discard("")
        legend_labels = {t.get_text() for legend in figure.legends for t in legend.texts}
        assert not [label for label in drawn if label.startswith("_")], drawn  # nothing drawn without a name
        assert drawn == legend_labels
        assert legend_labels >= {
            "ranging samples",
            "testing samples",
            "uncertainty",
            "flagged (overrange/missing)",
            "LoadGen window (ranging)",
            "LoadGen window (testing)",
            "ranging phase begins",
            "testing phase begins",
            "current range",
        }
        figure.set_dpi(300)
        assert legibility.check(figure) == []


# --------------------------------------------------------------------------- over the API


@pytest.fixture
def lab(tmp_path: Path, data_dir: Path):
    results = tmp_path / "results"
    _run_folder(results, "run-9")
    _run_folder(results, "run-10", analysis=None)
    service = FiguresService(data_dir, tmp_path / "figures", results_dir=results, workers=1)
    yield service, TestClient(create_app(service, api_token="t0ken")), tmp_path
    service.close()


AUTH = {"Authorization": "Bearer t0ken"}


def _done(client: TestClient, job_id: str) -> dict:
    return wait_for(
        lambda: (lambda s: s if s["state"] in ("done", "failed") else None)(client.get(f"/jobs/{job_id}").json()),
        what=f"job {job_id}",
    )


def test_run_figures_are_rendered_and_served_beside_the_paper_figures(lab) -> None:
    service, client, _ = lab
    assert client.get("/runs").json() == []
    assert client.get("/runs/run-9/figures").status_code == 404
    assert client.post("/runs/run-9/figures").status_code == 401  # rendering needs the token, like /rebuild
    accepted = client.post("/runs/run-9/figures", headers=AUTH)
    assert accepted.status_code == 202
    status = _done(client, accepted.json()["job_id"])
    assert status["state"] == "done" and status["rebuild"] is False and status["rendered"] == []
    assert status["run_figures"]["efficiency"]["value"] == EFFICIENCY
    listing = client.get("/runs/run-9/figures").json()
    assert set(listing["figures"]) == {"trace", "placement"} and set(listing["figures"]["placement"]) == {
        "png",
        "svg",
        "json",
    }
    png = client.get(listing["figures"]["trace"]["png"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    placement = client.get("/runs/run-9/figures/placement.json").json()
    assert placement["key_values"]["run_efficiency"] == EFFICIENCY
    assert client.get("/runs/run-9/figures/trace.json").status_code == 404  # a trace has no JSON
    assert [r["run_id"] for r in client.get("/runs").json()] == ["run-9"]

    status = _done(client, client.post("/runs/run-10/figures", headers=AUTH).json()["job_id"])
    assert set(client.get("/runs/run-10/figures").json()["figures"]) == {"trace"}  # no analysis: no placement
    assert status["run_figures"]["notes"]


def test_run_requests_name_runs_and_never_reach_outside(lab) -> None:
    service, client, root = lab
    (root / "outside").mkdir()
    (root / "outside" / "documents.jsonl").write_text("{}\n")
    (root / "outside" / "escape_trace.png").write_bytes(b"\x89PNG secret")
    os.symlink(root / "outside", root / "results" / "escape")
    service.runs_dir().mkdir(parents=True, exist_ok=True)
    os.symlink(root / "outside", service.runs_dir() / "escape")
    for bad in ("..", "%2e%2e", "run 9", "a%2Fb", "run-9%00", "x" * 129):
        response = client.get(f"/runs/{bad}/figures/trace.png")
        assert response.status_code in (404, 422), (bad, response.status_code)
        assert client.post(f"/runs/{bad}/figures", headers=AUTH).status_code in (404, 405, 422), bad
    assert client.get("/runs/escape/figures/trace.png").status_code == 404  # a symlink out of the folder
    assert client.get("/runs/escape/figures").status_code == 404
    assert client.post("/runs/escape/figures", headers=AUTH).status_code == 404
    assert client.post("/runs/no-such-run/figures", headers=AUTH).status_code == 404
    assert [r["run_id"] for r in client.get("/runs").json()] == []
    assert client.get("/runs/run-9/figures/trace.exe").status_code == 404
    assert client.get("/runs/run-9/figures/other.png").status_code == 404


def test_a_run_analyzed_event_with_a_path_for_a_run_id_writes_nothing(tmp_path: Path, data_dir: Path) -> None:
    results = tmp_path / "results"
    _run_folder(results, "run-11")
    service = FiguresService(data_dir, tmp_path / "figures", results_dir=results, workers=1)
    try:
        written = service._run_figures("../results/run-11", _summary("run-11"))
        assert written["files"] == [] and "run id" in written["notes"][0]
        assert not (tmp_path / "figures").exists()
        assert service._run_figures("run-11", _summary("run-11"))["files"]
    finally:
        service.close()


def test_repeated_requests_for_a_waiting_run_share_one_job(tmp_path: Path, data_dir: Path) -> None:
    results = tmp_path / "results"
    _run_folder(results, "run-12")
    service = FiguresService(data_dir, tmp_path / "figures", results_dir=results, workers=1)
    blocker = threading.Event()
    run = service._run
    service._run = lambda job: (blocker.wait(30), run(job))  # the worker holds the first job until released
    try:
        first = service.submit_run("run-12")
        assert [service.submit_run("run-12").id for _ in range(5)] == [first.id] * 5
        blocker.set()
        wait_for(lambda: first.done.is_set(), what="the run job")
        assert first.state == "done"
        assert service.submit_run("run-12").id != first.id  # once done, a new request renders again
    finally:
        blocker.set()
        service.close()
