"""The audit matches what the two builds wrote, the outputs are complete, and rebuilds are incremental."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from mlpower.figures.audit import write_audit
from mlpower.figures.build import build
from mlpower.figures.catalogue import NAMES
from mlpower.figures.loader import ALL_FILES, EDGE
from PIL import Image


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Independent of the code under test: nested key values -> dotted/indexed keys."""
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}.{key}" if prefix else key).items()
        }
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return not math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a != b


def test_corrected_differs_from_paper_exactly_where_the_audit_says(figure_json, audit_report) -> None:
    by_figure = {f["figure"]: f for f in audit_report["figures"]}
    assert set(by_figure) == set(NAMES)
    for name in NAMES:
        paper = _flat(figure_json["paper"][name]["key_values"])
        corrected = _flat(figure_json["corrected"][name]["key_values"])
        differing = {
            k
            for k in set(paper) | set(corrected)
            if k not in paper or k not in corrected or _differs(paper[k], corrected[k])
        }
        said = {d["key"] for d in by_figure[name]["differences"] if d["section"] == "key_values"}
        assert said == differing, name
        # The plotted values with their rows: the same comparison over the "plotted" sections.
        p_points = {k: v["value"] for k, v in figure_json["paper"][name]["plotted"].items() if k not in paper}
        c_points = {k: v["value"] for k, v in figure_json["corrected"][name]["plotted"].items() if k not in corrected}
        differing_points = {
            k
            for k in set(p_points) | set(c_points)
            if k not in p_points or k not in c_points or _differs(p_points[k], c_points[k])
        }
        assert {d["key"] for d in by_figure[name]["differences"] if d["section"] == "plotted"} == differing_points


def test_audit_names_the_rows_responsible(audit_report) -> None:
    by_figure = {f["figure"]: f for f in audit_report["figures"]}
    assert by_figure["fig1"]["differences"] == []
    fig2 = {d["key"]: d for d in by_figure["fig2"]["differences"]}
    assert set(fig2) == {"Datacenter_max_W"}
    assert fig2["Datacenter_max_W"]["rows_paper"] == ["typed_values.json:fig2.datacenter_max_override_W"]
    assert fig2["Datacenter_max_W"]["rows_corrected"][0].startswith("data_cleaned_inference_datacenter.csv:")
    resnet = {d["key"]: d for d in by_figure["fig5a"]["differences"]}["ResNet@v4.1_normalized"]
    assert resnet["rows_paper"] and resnet["rows_corrected"] and resnet["rows_paper"] != resnet["rows_corrected"]
    for figure in audit_report["figures"]:
        for d in figure["differences"]:
            if d["change"] != "only_corrected" and d["section"] == "plotted":
                assert d["rows_paper"], (figure["figure"], d["key"])


def test_audit_report_files(tmp_path: Path, audit_report) -> None:
    markdown = write_audit(audit_report, tmp_path / "audit.md").read_text()
    assert "## fig5a" in markdown and "ResNet@v4.1_normalized" in markdown
    assert json.loads(write_audit(audit_report, tmp_path / "audit.json").read_text())["figures"][0]["figure"] == "fig1"


def test_every_figure_has_png_svg_json(built) -> None:
    for mode, (folder, report) in built.items():
        assert sorted(report.rendered) == sorted(NAMES) and report.unchanged == []
        for name in NAMES:
            with Image.open(folder / f"{name}.png") as image:
                assert round(image.info["dpi"][0]) == 300
            assert ET.parse(folder / f"{name}.svg").getroot().tag.endswith("svg")
            document = json.loads((folder / f"{name}.json").read_text())
            assert document["figure"] == name and document["mode"] == mode and "key_values" in document


def test_unchanged_inputs_render_nothing(built, data_dir: Path) -> None:
    for mode, (folder, _) in built.items():
        before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
        report = build(folder, data_dir, mode=mode)
        assert report.rendered == [] and sorted(report.unchanged) == sorted(NAMES)
        assert report.seconds < 0.5
        assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_only_figures_whose_inputs_changed_are_rerendered(tmp_path: Path, data_dir: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ALL_FILES:
        shutil.copyfile(data_dir / name, data / name)
    out = tmp_path / "out"
    first = build(out, data, only=["fig5b", "fig9", "fig11b"], workers=1)
    assert sorted(first.rendered) == ["fig11b", "fig5b", "fig9"]
    with open(data / EDGE, "a") as handle:  # a new (irrelevant) row changes the edge table's bytes
        handle.write("\n")
    second = build(out, data, only=["fig5b", "fig9", "fig11b"], workers=1)
    assert second.rendered == ["fig5b"] and sorted(second.unchanged) == ["fig11b", "fig9"]
    (out / "fig9.svg").unlink()  # a missing output is rebuilt too
    assert build(out, data, only=["fig9"], workers=1).rendered == ["fig9"]
    # Another mode into the same folder is another input.
    assert build(out, data, mode="corrected", only=["fig9"], workers=1).rendered == ["fig9"]


def test_parallel_rendering_beside_other_threads(tmp_path: Path, data_dir: Path) -> None:
    """In the service (other threads running) workers come from a fork server, not a bare fork."""
    import threading

    from mlpower.figures.build import start_method

    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert start_method() in ("forkserver", "spawn")
        report = build(tmp_path, data_dir, only=["fig9", "fig11b"], workers=2)
    finally:
        stop.set()
    assert sorted(report.rendered) == ["fig11b", "fig9"]
    with Image.open(tmp_path / "fig9.png") as image:
        assert image.size[0] > 1000


def test_damaged_outputs_are_rendered_again(tmp_path: Path, data_dir: Path) -> None:
    """The manifest records each output's SHA-256: an overwritten, truncated or missing file is
    noticed on the next build and only that figure is rendered again."""
    out = tmp_path / "out"
    build(out, data_dir, only=["fig9", "fig11b"], workers=1)
    manifest = json.loads((out / ".manifest.json").read_text())
    for name in ("fig9", "fig11b"):
        assert set(manifest[name]["outputs"]) == {f"{name}.png", f"{name}.svg", f"{name}.json"}
    original = (out / "fig9.png").read_bytes()

    (out / "fig9.png").write_bytes(b"\x89PNG not really")  # overwritten
    report = build(out, data_dir, only=["fig9", "fig11b"], workers=1)
    assert report.rendered == ["fig9"] and report.unchanged == ["fig11b"]
    assert (out / "fig9.png").read_bytes() == original  # rendering is deterministic

    with open(out / "fig11b.svg", "r+b") as handle:  # truncated
        handle.truncate(100)
    assert build(out, data_dir, only=["fig9", "fig11b"], workers=1).rendered == ["fig11b"]

    document = json.loads((out / "fig9.json").read_text())
    document["key_values"]["BERT-99.9"]["v1.0"] = 0.9  # edited by hand
    (out / "fig9.json").write_text(json.dumps(document))
    assert build(out, data_dir, only=["fig9"], workers=1).rendered == ["fig9"]
    assert json.loads((out / "fig9.json").read_text())["key_values"]["BERT-99.9"]["v1.0"] == 0.495

    (out / "fig11b.png").unlink()
    assert build(out, data_dir, only=["fig9", "fig11b"], workers=1).rendered == ["fig11b"]
    assert build(out, data_dir, only=["fig9", "fig11b"], workers=1).rendered == []


@pytest.mark.parametrize("workers", [1, 2])
def test_a_figure_that_fails_to_render_fails_the_build_and_records_nothing(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    from mlpower.figures import catalogue
    from mlpower.figures.build import read_manifest

    broken = dataclasses.replace(catalogue.entry("fig9"), draw="draw_nothing")
    monkeypatch.setattr(catalogue, "select", lambda names: [broken, catalogue.entry("fig11b")])
    with pytest.raises(AttributeError, match="draw_nothing"):
        build(tmp_path, data_dir, workers=workers)
    assert read_manifest(tmp_path) == {}
