"""Corrected mode changes only what the data prove wrong, on the public tables, and the audit says why."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from mlpower.figures import catalogue, draw
from mlpower.figures.audit import compare, summary_text
from mlpower.figures.corrections import BENCHMARK_CHANGES, BY_ID, UNEXPLAINED, BenchmarkChange
from mlpower.figures.figuredata import FigureData
from mlpower.figures.histograms import compute_fig10
from mlpower.figures.loader import ALL_FILES, DATACENTER, load_results
from mlpower.figures.render import style_context


def _rows_by_line(results) -> dict[int, dict]:
    return {row["_line"]: row for row in results.datacenter.iter_rows(named=True)}


def _line(ref: str) -> int:
    return int(ref.rsplit(":", 1)[1])


def _round(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version))


# --------------------------------------------------------------------------- fig 10


def test_fig10_corrected_has_no_pair_across_a_benchmark_change(figure_json, results) -> None:
    """Read back from the table rows themselves: no plotted delta compares 3D-UNet on BraTS (<= v1.1)
    with 3D-UNet on KiTS (>= v2.0), and the six pairs that would are listed with the change and source."""
    rows = _rows_by_line(results)
    fig10 = figure_json["corrected"]["fig10"]
    for key, point in fig10["plotted"].items():
        perf_a, _, perf_b, _ = (rows[_line(r)] for r in point["rows"])
        model = perf_a["Model MLC"].lower()
        for change in BENCHMARK_CHANGES:
            if model.startswith(change.benchmark):
                before, after = _round(perf_a["version"]), _round(perf_b["version"])
                assert not before < _round(change.changed_in) <= after, key
    excluded = fig10["excluded"]
    assert len(excluded) == 6
    for entry in excluded:
        perf_a, _, perf_b, _ = (rows[_line(r)] for r in entry["rows"])
        assert perf_a["Model MLC"].lower().startswith("3d-unet") and perf_a["version"] == "v1.1"
        assert perf_b["version"] == "v2.0"
        assert entry["value"] < -90  # BraTS volumes against KiTS volumes: not a software change
        assert entry["cause"] == "benchmark-change" and "BraTS 2019" in entry["why"] and "KiTS" in entry["why"]
    assert min(fig10["series"]["values"]) > -50  # what is left is software on the same hardware
    assert any("3d-unet v2.0" in note for note in fig10["notes"])


def test_fig10_corrected_keeps_a_large_real_regression(tmp_path: Path, data_dir: Path) -> None:
    """No blanket cut: a ResNet system whose power tripled from one round to the next is plotted
    at about -67 % in corrected mode, while paper mode's typed -50 % cut drops it."""
    for name in ALL_FILES:
        shutil.copyfile(data_dir / name, tmp_path / name)
    before = compute_fig10(load_results(data_dir), "corrected")
    key, point = next((k, p) for k, p in before.points.items() if k.startswith("resnet|") and abs(p["value"]) < 20)
    power_line = _line(point["rows"][3])  # the later round's power row
    lines = (tmp_path / DATACENTER).read_text().splitlines(keepends=True)
    fields = lines[power_line - 1].split(",")
    result_column = 7
    fields[result_column] = repr(float(fields[result_column]) * 3)
    lines[power_line - 1] = ",".join(fields)
    (tmp_path / DATACENTER).write_text("".join(lines))
    after = compute_fig10(load_results(tmp_path), "corrected")
    assert after.points[key]["value"] == pytest.approx((1 + point["value"] / 100) / 3 * 100 - 100, rel=1e-9)
    assert after.points[key]["value"] < -50 and after.excluded == before.excluded
    paper = compute_fig10(load_results(tmp_path), "paper")
    assert all(v >= -50 for v in paper.series["values"])


def test_benchmark_change_table_entries_name_their_source() -> None:
    for change in BENCHMARK_CHANGES:
        assert change.source and change.change and re.fullmatch(r"v\d+\.\d+", change.changed_in)
    unet = BenchmarkChange("3d-unet", "v2.0", "dataset", "notes")
    assert unet.splits("3d-unet", "v1.1", "v2.0") and unet.splits("3d-unet", "v1.0", "v2.1")
    assert not unet.splits("3d-unet", "v2.0", "v2.1") and not unet.splits("3d-unet", "v1.0", "v1.1")
    assert not unet.splits("resnet", "v1.1", "v2.0")


# --------------------------------------------------------------------------- fig 7


def test_fig7_corrected_draws_llama2_per_token_on_its_own_axis(figure_json, results) -> None:
    corrected = figure_json["corrected"]["fig7"]
    per_token = corrected["key_values"]["Datacenter (J/token)"]
    assert list(per_token) == ["Llama2-99.9"]
    assert "Llama2-99.9" not in corrected["key_values"]["Datacenter"]
    rows = _rows_by_line(results)
    perf, power = (rows[_line(r)] for r in corrected["plotted"]["Datacenter (J/token).Llama2-99.9"]["rows"])
    assert perf["Units"] == "Tokens/s" and perf["Scenario"] == "Offline" and perf["Public ID"] == "4.0-0063"
    watts, tokens_per_s = (float(row["Result"].replace(",", "")) for row in (power, perf))
    assert per_token["Llama2-99.9"] == pytest.approx(watts / tokens_per_s)

    entry = catalogue.entry("fig7")
    data = entry.compute(results, "corrected")
    with style_context(entry.look["font_size"]):
        figure = draw.draw_fig7(data, entry.look)
    by_label = {ax.get_ylabel(): ax for ax in figure.axes}
    token_axis, sample_axis = (
        by_label["Energy per Token\n(Joules/Token)"],
        by_label["Energy per Inference\n(Joules/Sample)"],
    )
    assert [p.get_height() for p in token_axis.patches] == [per_token["Llama2-99.9"]]
    sample_heights = [p.get_height() for p in sample_axis.patches]
    assert per_token["Llama2-99.9"] not in sample_heights and len(sample_heights) == 12


def test_fig7_paper_keeps_the_typed_j_per_sample(figure_json) -> None:
    paper = figure_json["paper"]["fig7"]["key_values"]
    assert "Datacenter (J/token)" not in paper and paper["Datacenter"]["Llama2-99.9"] > 100  # J/token x 292


# --------------------------------------------------------------------------- the audit


def test_every_difference_has_a_declared_cause(audit_report) -> None:
    assert audit_report["totals"][UNEXPLAINED] == 0
    for figure in audit_report["figures"]:
        for difference in figure["differences"]:
            assert difference["causes"] and all(c in BY_ID for c in difference["causes"]), difference["key"]
            for cause_id in difference["causes"]:
                assert figure["figure"] in BY_ID[cause_id].figures, (figure["figure"], cause_id)
        if figure["differences"]:
            assert figure["causes"], figure["figure"]


def test_causes_group_the_rows_behind_them(audit_report) -> None:
    causes = audit_report["causes"]
    by_figure = {f["figure"]: f for f in audit_report["figures"]}
    for cause_id, entry in causes.items():
        listed = {(d["figure"], d["key"]) for d in entry["differences"]}
        expected = {
            (f["figure"], d["key"])
            for f in audit_report["figures"]
            for d in f["differences"]
            if cause_id in d["causes"]
        }
        assert listed == expected and entry["counts"]["differences"] == len(listed)
        rows = set()
        for figure, key in listed:
            d = next(d for d in by_figure[figure]["differences"] if d["key"] == key)
            rows |= set(d["rows_paper"]) | set(d["rows_corrected"])
        for e in entry["excluded"]:
            rows |= set(next(x for x in by_figure[e["figure"]]["excluded"][e["mode"]] if x["key"] == e["key"])["rows"])
        assert set(entry["rows"]) == rows and entry["counts"]["rows"] == len(rows)


def test_named_differences_carry_the_cause_the_data_show(audit_report) -> None:
    differences = {(f["figure"], d["key"]): d for f in audit_report["figures"] for d in f["differences"]}
    assert differences[("fig5a", "ResNet@v4.1_version_max_efficiency")]["causes"] == ["cross-join"]
    assert "mislabelled-tokens" in differences[("fig5a", "DLRM-v2-99.0@v4.1_version_max_efficiency")]["causes"]
    assert differences[("fig5a", "GPTJ-99.0@v4.1_normalized")]["causes"] == ["tokens-per-sample"]
    assert differences[("fig2", "Datacenter_max_W")]["causes"] == ["fig2-typed-max"]
    assert {tuple(d["causes"]) for (f, k), d in differences.items() if f == "fig8" and "@v3.0" in k} == {
        ("v30-bare-names",)
    }
    duplicated = [d for (f, _), d in differences.items() if f == "fig10" and "duplicate-rows" in d["causes"]]
    assert duplicated and all(
        any(r.endswith((":849", ":850", ":857", ":858")) for r in d["rows_paper"]) for d in duplicated
    )
    cut = audit_report["causes"]["fig10-cut"]
    assert cut["counts"]["excluded"] == 16 and cut["counts"]["differences"] == 0


def test_a_difference_nobody_tagged_is_unexplained() -> None:
    paper = FigureData("figX", "paper", series={}, key_values={"a": 1.0, "b": 2.0})
    corrected = FigureData("figX", "corrected", series={}, key_values={"a": 1.0, "b": 3.0})
    paper.point("b", 2.0, ["t.csv:2"])
    corrected.point("b", 3.0, ["t.csv:2"])
    assert [d["causes"] for d in compare(paper, corrected)] == [[UNEXPLAINED]]
    corrected.point("b", 3.0, ["t.csv:2"], ["cross-join"])
    assert [d["causes"] for d in compare(paper, corrected)] == [["cross-join"]]


def test_summary_fits_80_columns_and_names_every_cause(audit_report, tmp_path: Path) -> None:
    text = summary_text(audit_report, tmp_path / "audit.json")
    assert all(len(line) <= 80 for line in text.splitlines()), max(text.splitlines(), key=len)
    for cause_id, entry in audit_report["causes"].items():
        if entry["counts"]["differences"] or entry["counts"]["excluded"]:
            assert f"\n{cause_id}: " in text
    flowed = " ".join(text.split())  # where lines wrap depends on the data folder's path
    assert "3d-unet v2.0" in flowed and "0 without a declared cause" in flowed
