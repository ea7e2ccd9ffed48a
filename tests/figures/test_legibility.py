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
