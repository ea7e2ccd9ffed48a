"""Every figure in both modes reads cleanly, measured with matplotlib's renderer, and the check can fail."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure
from mlpower.figures import catalogue, draw, legibility
from mlpower.figures.catalogue import NAMES
from mlpower.figures.figuredata import MODES
from mlpower.figures.render import PNG_DPI, style_context


def _drawn(results, name: str, mode: str) -> Figure:
    entry = catalogue.entry(name)
    data = entry.compute(results, mode)
    with style_context(entry.look["font_size"]):
        figure = getattr(draw, entry.draw)(data, entry.look)
        figure.set_dpi(PNG_DPI)
    return figure


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_figure_reads_cleanly(results, name: str, mode: str) -> None:
    entry = catalogue.entry(name)
    figure = _drawn(results, name, mode)
    with style_context(entry.look["font_size"]):
        findings = legibility.check(figure)
    assert findings == [], "\n".join(map(str, findings))


def _plain() -> tuple[Figure, object]:
    figure = Figure(figsize=(6, 4), layout="constrained", dpi=100)
    ax = figure.add_subplot()
    ax.plot([0, 1, 2, 3], [0, 1, 2, 3], marker="o", label="data")
    ax.set_xlabel("x label")
    ax.set_ylabel("y label")
    return figure, ax


def test_a_clean_figure_passes() -> None:
    figure, ax = _plain()
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    assert legibility.check(figure) == []


def test_overlapping_texts_fail() -> None:
    figure, ax = _plain()
    ax.text(2.5, 0.5, "first note")
    ax.text(2.6, 0.5, "second note")
    findings = legibility.check(figure)
    assert [f.kind for f in findings] == ["overlap"]
    assert "'first note'" in findings[0].message and "'second note'" in findings[0].message


def test_an_axis_label_over_tick_labels_fails() -> None:
    """The fig 6 defect: a right-axis label printed over that axis' tick labels."""
    figure, ax = _plain()
    twin = ax.twinx()
    twin.set_ylim(0, 30)
    twin.set_ylabel("Time-to-Train (mins)", labelpad=-12)
    findings = legibility.check(figure)
    assert any(f.kind == "overlap" and "Time-to-Train" in f.message for f in findings), findings


def test_rotated_labels_are_compared_as_rotated_rectangles() -> None:
    """Neighbouring 45-degree labels whose axis-aligned boxes overlap but whose glyph boxes do not pass;
    pushed together they fail."""
    figure = Figure(figsize=(6, 4), layout="constrained", dpi=100)
    ax = figure.add_subplot()
    ax.bar(range(4), [1, 2, 3, 4])
    ax.set_xticks(
        range(4),
        ["label one", "label two", "label three", "label four"],
        rotation=45,
        ha="right",
        rotation_mode="anchor",
    )
    assert legibility.check(figure) == []
    ax.set_xticks(
        [0, 0.05, 0.1, 0.15],
        ["label one", "label two", "label three", "label four"],
        rotation=45,
        ha="right",
        rotation_mode="anchor",
    )
    assert any(f.kind == "overlap" for f in legibility.check(figure))


def test_a_legend_on_the_data_fails() -> None:
    figure, ax = _plain()
    ax.legend(loc="center", fontsize=20, markerscale=3)
    findings = legibility.check(figure)
    assert any(f.kind == "covers-data" and "legend 'data'" in f.message for f in findings), findings


def test_text_over_a_bar_fails_and_a_label_on_top_of_it_passes() -> None:
    figure = Figure(figsize=(6, 4), layout="constrained", dpi=100)
    ax = figure.add_subplot()
    (bar,) = ax.bar([0], [10])
    ax.set_ylim(0, 14)
    ax.annotate("10.0", (0, 10), ha="center", va="bottom")
    assert legibility.check(figure) == []
    ax.text(0, 5, "inside", ha="center")
    assert [f.kind for f in legibility.check(figure)] == ["covers-data"]


def test_text_outside_the_figure_fails() -> None:
    figure, ax = _plain()
    figure.text(0.95, 0.5, "a note that runs off the edge")
    findings = legibility.check(figure)
    assert any(f.kind == "outside" and "runs off the edge" in f.message for f in findings), findings


def test_the_old_overlapped_fig11b_layout_fails(results) -> None:
    """A deliberately overlapped figure from the catalogue: fig 11b's corrected note printed at the
    default font size over the y label, as before this check existed."""
    entry = catalogue.entry("fig11b")
    look = {**entry.look, "note_font_size": 28, "note_width_chars": 200}
    data = entry.compute(results, "corrected")
    with style_context(look["font_size"]):
        figure = draw.draw_ratios(data, look)
        figure.set_dpi(PNG_DPI)
        findings = legibility.check(figure)
    assert any("Normalized Score" in f.message for f in findings), findings


# The paper's wording, as upstream's scripts set it (axis labels, legend entries): line breaks
# may differ where a label must fit the figure, the words may not.
PAPER_WORDING = {
    "fig1": {
        "x": "MLPerf Inference Benchmark Version",
        "y": "Normalized Performance",
        "legend": [
            "ResNet",
            "3D U-Net",
            "RetinaNet",
            "Mask R-CNN",
            "DLRM",
            "GPT-J",
            "Stable Diffusion v2",
            "Moore's Law",
        ],
    },
    "fig2": {"x": "System Type", "y": "Power Consumption (W)", "legend": ["Minimum Power", "Maximum Power"]},
    "fig5a": {
        "x": "MLPerf Inference Benchmark Version",
        "y": "Normalized Energy Efficiency (Samples/Joule)",
        "legend": [
            "Benchmark",
            "RetinaNet",
            "BERT-99.0",
            "ResNet",
            "RNN-T",
            "GPTJ-99.0",
            "DLRM-v2-99.0",
            "Llama2-70b-99.9",
        ],
    },
    "fig5b": {
        "x": "MLPerf Inference Benchmark Version",
        "y": "Normalized Energy Efficiency (Samples/Joule)",
        "legend": ["Benchmark", "RetinaNet", "BERT-99.0", "ResNet", "RNN-T"],
    },
    "fig5c": {
        "x": "MLPerf Tiny Benchmark Version",
        "y": "Normalized Energy Efficiency (Samples/Joule)",
        "legend": ["Benchmark", "MobileNet", "ResNet", "DSCNN", "AutoEncoder"],
    },
    "fig6": {
        "x": "Number of Accelerators",
        "y": "Energy (MJ)",
        "y2": "Time-to-Train (mins)",
        "legend": ["Compute Energy (MJ)", "Interconnect Energy (MJ)", "Time-to-Train (mins)"],
    },
    "fig7": {
        "x": "Workload",
        "y": "Energy per Inference (Joules/Sample)",
        "y2": "Total MAC Operations",
        "legend": [
            "Datacenter",
            "Tiny",
            "MAC Operations",
            "Computer Vision",
            "Recommendation",
            "Language",
            "Generative AI",
            "Anomaly Detection",
        ],
    },
    "fig8": {"x": "Energy Efficiency Percent Increase (%)", "y": "Frequency", "legend": []},
    "fig9": {
        "x": "MLPerf Inference Benchmark Version",
        "y": "Energy Efficiency (Samples/Joule) Normalized to BERT-99.0",
        "legend": ["BERT-99.0 Low Accuracy", "BERT-99.9 High Accuracy"],
    },
    "fig10": {"x": "Energy Efficiency Percent Increase (%)", "y": "Frequency", "legend": []},
    "fig11a": {
        "x": "MLPerf ResNet Benchmark Version",
        "y": "Normalized Score",
        "legend": ["Energy Efficiency", "Performance", "Power"],
    },
    "fig11b": {
        "x": "Hardware Version",
        "y": "Normalized Score",
        "legend": ["Energy Efficiency", "Performance", "Power"],
    },
}


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("name", NAMES)
def test_paper_mode_uses_the_papers_wording(results, name: str) -> None:
    figure = _drawn(results, name, "paper")
    expected = PAPER_WORDING[name]
    main = figure.axes[0]
    assert _words(main.get_xlabel()) == expected["x"]
    assert _words(main.get_ylabel()) == expected["y"]
    right = [_words(ax.get_ylabel()) for ax in figure.axes[1:] if ax.get_ylabel()]
    assert right == ([expected["y2"]] if "y2" in expected else [])
    legends = list(figure.legends) + [ax.get_legend() for ax in figure.axes if ax.get_legend()]
    texts = []
    for legend in legends:
        if legend.get_title().get_text():
            texts.append(legend.get_title().get_text())
        texts += [t.get_text() for t in legend.texts]
    assert texts == expected["legend"]


def test_log_tick_labels_in_unicode_name_the_same_ticks_and_numbers() -> None:
    """Log-axis labels are written without TeX (parsing it cost more than drawing): the same ticks
    carry a label as with matplotlib's formatter, and each reads as the same number."""
    import re as regex

    from matplotlib.ticker import LogFormatterSciNotation
    from mlpower.figures.draw import UnicodePowerFormatter, power_text

    assert power_text(10, -6) == "10⁻⁶" and power_text(10, 14) == "10¹⁴" and power_text(10, 0, "2") == "2×10⁰"
    superscripts = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
    for low, high in ((1e-7, 1e3), (0.9, 3.5), (1e5, 1e15)):
        figure = Figure()
        ax = figure.add_subplot()
        ax.set_yscale("log")
        ax.set_ylim(low, high)
        for minor in (False, True):
            ticks = ax.yaxis.get_minorticklocs() if minor else ax.yaxis.get_majorticklocs()
            reference, unicode = (
                LogFormatterSciNotation(labelOnlyBase=False),
                UnicodePowerFormatter(labelOnlyBase=False),
            )
            for formatter in (reference, unicode):
                formatter.set_axis(ax.yaxis)
                formatter.set_locs(ticks)
            for tick in ticks:
                expected, label = reference(tick), unicode(tick)
                assert bool(expected) == bool(label), (tick, expected, label)
                if label:
                    mantissa, _, power = label.rpartition("×")
                    base, exponent = power[:2], power[2:].translate(superscripts)
                    value = float(mantissa or 1) * float(base) ** int(exponent)
                    assert value == pytest.approx(tick, rel=1e-9) and "$" not in label
                    assert regex.fullmatch(r"(\d+×)?10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+", label)
