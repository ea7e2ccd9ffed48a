"""Properties of the plotted numbers that follow from paper-figures.md, and the numbers it states."""

from __future__ import annotations

import math
import re

import pytest
from mlpower.figures.typed import typed_values

TRENDS = ("fig5a", "fig5b", "fig5c")
KEY = re.compile(
    r"^(?P<label>.+)@(?P<version>v\d+\.\d+)_(?P<what>version_max_efficiency|running_max_efficiency|normalized)$"
)


def _series(key_values: dict) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key, value in key_values.items():
        match = KEY.match(key)
        assert match, f"unexpected key {key!r}"
        out.setdefault(match["label"], {}).setdefault(match["what"], {})[match["version"]] = value
    return out


@pytest.mark.parametrize("mode", ["paper", "corrected"])
@pytest.mark.parametrize("name", TRENDS)
def test_trend_series_properties(figure_json, name: str, mode: str) -> None:
    series = _series(figure_json[mode][name]["key_values"])
    assert set(series) <= set(typed_values()[name]["legend"])
    assert series, "no series"
    for label, parts in series.items():
        versions = sorted(parts["version_max_efficiency"])
        assert set(parts["running_max_efficiency"]) == set(parts["normalized"]) == set(versions)
        running = [parts["running_max_efficiency"][v] for v in versions]
        best = [parts["version_max_efficiency"][v] for v in versions]
        normalised = [parts["normalized"][v] for v in versions]
        assert all(b >= a for a, b in zip(running, running[1:], strict=False)), f"{label}: running maximum decreases"
        assert all(r >= v for r, v in zip(running, best, strict=True)), f"{label}: running max below the round's best"
        assert running == [max(best[: i + 1]) for i in range(len(best))]
        assert normalised[0] == 1.0
        assert normalised == pytest.approx([r / running[0] for r in running], rel=1e-12)


def test_trend_legends_are_the_typed_lists_in_paper_mode(figure_json) -> None:
    assert list(_series(figure_json["paper"]["fig5a"]["key_values"])) == typed_values()["fig5a"]["legend"]
    assert set(_series(figure_json["paper"]["fig5b"]["key_values"])) == {"RetinaNet", "BERT-99.0", "ResNet", "RNN-T"}
    assert "ResNet@v4.1_normalized" in figure_json["paper"]["fig5a"]["key_values"]


def test_fig5a_resnet_v41_is_the_cross_join_pair(figure_json, results) -> None:
    """paper-figures.md 3.3: the higher throughput of 4.1-0049 with the lower power, which no system achieved."""
    rows = {
        r["_line"]: r
        for r in results.datacenter.filter(results.datacenter["Public ID"] == "4.1-0049").iter_rows(named=True)
    }
    paper = figure_json["paper"]["fig5a"]["plotted"]["ResNet@v4.1_version_max_efficiency"]
    corrected = figure_json["corrected"]["fig5a"]["plotted"]["ResNet@v4.1_version_max_efficiency"]
    perf_line, power_line = (int(ref.rsplit(":", 1)[1]) for ref in paper["rows"][:2])
    assert rows[perf_line]["Result"].startswith("556234") and float(rows[power_line]["Result"]) < 1100
    assert abs(perf_line - power_line) > 1, "the paper point pairs rows of different systems"
    assert paper["value"] == pytest.approx(556234 / float(rows[power_line]["Result"]), rel=1e-6)
    c_perf, c_power = (int(ref.rsplit(":", 1)[1]) for ref in corrected["rows"][:2])
    assert abs(c_perf - c_power) == 1 and corrected["value"] < paper["value"]


def test_fig2_keys_and_the_typed_datacenter_maximum(figure_json) -> None:
    paper, corrected = figure_json["paper"]["fig2"]["key_values"], figure_json["corrected"]["fig2"]["key_values"]
    expected = {f"{scale}_{end}_W" for scale in ("Tiny", "Edge", "Datacenter", "Training") for end in ("min", "max")}
    assert set(paper) == set(corrected) == expected
    assert paper["Datacenter_max_W"] == 6280.2
    assert corrected["Datacenter_max_W"] < 6280.21  # the override only ever applies below this
    for values in (paper, corrected):
        for scale in ("Tiny", "Edge", "Datacenter", "Training"):
            assert 0 < values[f"{scale}_min_W"] <= values[f"{scale}_max_W"]
        assert values["Tiny_max_W"] < 1 < values["Edge_min_W"]  # microcontrollers draw milliwatts


@pytest.mark.parametrize("mode", ["paper", "corrected"])
@pytest.mark.parametrize("name", ["fig8", "fig10"])
def test_histogram_key_values(figure_json, name: str, mode: str) -> None:
    document = figure_json[mode][name]
    kv, values = document["key_values"], document["series"]["values"]
    assert set(kv) == {"histogram_counts", "histogram_edges", "n_values", "min", "max", "mean", "median"}
    assert sum(kv["histogram_counts"]) == kv["n_values"] == len(values) == len(document["plotted"])
    assert len(kv["histogram_counts"]) == 20 and len(kv["histogram_edges"]) == 21
    assert kv["histogram_edges"][0] == kv["min"] == min(values)
    assert kv["histogram_edges"][-1] == kv["max"] == max(values)
    assert kv["min"] <= kv["median"] <= kv["max"] and kv["mean"] == pytest.approx(sum(values) / len(values))
    assert all(len(point["rows"]) >= 4 for point in document["plotted"].values())  # two pairs behind each value


def test_fig10_paper_cut_and_major_versions(figure_json) -> None:
    paper = figure_json["paper"]["fig10"]
    assert min(paper["series"]["values"]) >= typed_values()["fig10"]["min_delta_percent"]
    assert any("dropped" in note for note in paper["notes"])
    assert all(e["cause"] == "fig10-cut" and e["value"] < -50 for e in paper["excluded"])
    corrected = figure_json["corrected"]["fig10"]
    assert all(e["cause"] == "benchmark-change" for e in corrected["excluded"])  # no cut for size


def test_fig8_paper_has_no_v30_pairs_and_corrected_resolves_them(figure_json) -> None:
    assert not [k for k in figure_json["paper"]["fig8"]["plotted"] if k.endswith("@v3.0")]
    assert [k for k in figure_json["corrected"]["fig8"]["plotted"] if "@v3.0" in k]
    versions = {k.split("@")[1] for k in figure_json["paper"]["fig8"]["plotted"]}
    assert {"v1.0", "v4.1"} <= versions  # every version with both targets, not only v3.1-v4.1


def test_typed_figures_reproduce_the_typed_values(figure_json) -> None:
    typed = typed_values()
    fig9 = figure_json["paper"]["fig9"]["key_values"]
    assert list(fig9["BERT-99.9"].values()) == typed["fig9"]["bert_99_9"]
    for name in ("fig11a", "fig11b"):
        kv = figure_json["paper"][name]["key_values"]
        assert list(kv["Energy Efficiency"].values()) == typed[name]["efficiency"]
        assert list(kv["Power"]) == typed[name]["versions"]
    fig7 = figure_json["paper"]["fig7"]["key_values"]
    assert fig7["Datacenter"]["Llama2-99.9"] == pytest.approx(0.3815189837 * 292, rel=1e-15)
    assert list(fig7["Datacenter"].values()) == sorted(fig7["Datacenter"].values(), reverse=True)
    assert len(fig7["MAC Operations"]) == 13
    assert figure_json["corrected"]["fig11b"]["key_values"] == {"Energy Efficiency": {}, "Performance": {}, "Power": {}}


def test_corrected_values_confirm_the_provenance_the_spec_gives(figure_json) -> None:
    """fig 6 totals are the DC-power kJ; fig 7 datacenter values are 4.0-0063 Offline W / (samples/s);
    fig 7 tiny values match 1.0-9002, with ResNet digit-transposed (27.17 typed, 27.711 in the CSV)."""
    paper6, corrected6 = figure_json["paper"]["fig6"]["key_values"], figure_json["corrected"]["fig6"]["key_values"]
    for n in ("8", "64", "512"):
        total = paper6["Compute Energy"][n] + paper6["Interconnect Energy"][n]
        assert corrected6["Total Energy"][n] == pytest.approx(total, abs=0.01)
        assert corrected6["Time to Train"][n] == paper6["Time to Train"][n]
    paper7, corrected7 = figure_json["paper"]["fig7"]["key_values"], figure_json["corrected"]["fig7"]["key_values"]
    for workload, value in paper7["Datacenter"].items():
        if workload != "Llama2-99.9":
            assert corrected7["Datacenter"][workload] == pytest.approx(value, rel=1e-9)
    assert corrected7["Tiny"]["ResNet Tiny"] == pytest.approx(27.711e-6)
    assert paper7["Tiny"]["ResNet Tiny"] == pytest.approx(27.17e-6)
    assert corrected7["Tiny"]["MobileNet"] == pytest.approx(paper7["Tiny"]["MobileNet"], rel=1e-3)


def test_fig5c_paper_leaves_out_comma_energies(figure_json) -> None:
    """paper-figures.md 2.2: the comma-formatted energies of 1.2-0004 (and others) never take part."""
    skipped = figure_json["paper"]["fig5c"]["skipped_rows"]
    assert any("6,919.38" in s["reason"] for s in skipped)
    used = {ref for p in figure_json["paper"]["fig5c"]["plotted"].values() for ref in p["rows"]}
    assert all("6,919" not in ref for ref in used)


def test_fig1_is_the_table_as_stored(figure_json) -> None:
    kv = figure_json["paper"]["fig1"]["key_values"]
    assert kv["Moore's Law"]["2021-06-30"] == kv["3D U-Net"]["2021-06-30"] == 2.419
    assert kv["ResNet"]["2018-12-12"] == 1.0 and kv["GPT-J"]["2018-12-12"] is None
    assert kv == figure_json["corrected"]["fig1"]["key_values"]
    assert all(not (isinstance(v, float) and math.isnan(v)) for s in kv.values() for v in s.values())
