"""The declared figure catalogue: one row per figure, instead of branching on names.

Each row says how the figure's numbers are computed (a pure function of the results and the
mode), how it is drawn (a pure function of those numbers and the row's ``look``), which input
files it depends on (for incremental rebuilds), and every presentation constant of the figure
(sizes, colours, markers, labels), so that the drawing code holds no literals of its own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlpower.figures.errors import UnknownFigure
from mlpower.figures.files import DATACENTER, EDGE, PERFORMANCE, TINY, TRAINING

if TYPE_CHECKING:
    from mlpower.figures.figuredata import FigureData
    from mlpower.figures.loader import Results


@dataclass(frozen=True)
class Entry:
    """Functions are named, not imported: deciding that nothing changed must not load polars or matplotlib."""

    name: str
    title: str
    upstream_script: str
    inputs: tuple[str, ...]
    computes_with: str  # "module:function" under mlpower.figures: (Results, mode) -> FigureData
    draw: str  # the name of the drawing function in ``mlpower.figures.draw``
    look: dict[str, Any] = field(default_factory=dict)

    def compute(self, results: Results, mode: str) -> FigureData:
        module, function = self.computes_with.split(":")
        return getattr(importlib.import_module(f"mlpower.figures.{module}"), function)(results, mode)


TREND_LOOK = {
    "figsize": (14, 8),
    "font_size": 35,
    "marker_size": 8,
    "date_margin_days": 30,
    "y_label": "Normalized Energy Efficiency\n(Samples/Joule)",
    "x_label": "MLPerf Inference Benchmark Version",
    "legend_title": "Benchmark",
    "legend_font_size": 24,
    "x_tick_size": 28,
    "y_tick_size": 28,
    "top_tick_size": 28,
    "tick_rotation": 45,
}
HIST_LOOK = {
    "figsize": (10, 4),
    "font_size": 24,
    "color": "lightcoral",
    "x_label": "Energy Efficiency Percent Increase (%)",
    "y_label": "Frequency",
    "x_tick_pad": 12,  # clear of the y axis' lowest label at the corner
}
RATIO_LOOK = {
    "figsize": (11, 6),
    "font_size": 28,
    "width": 0.25,
    "colors": ["lightblue", "lightcoral", "lightgreen"],
    "label_rotation": 60,
    "label_format": "{:.2f}",
    "label_offset_points": (-3, 2),
    "reference": 1.0,
    "y_label": "Normalized Score",
    "label_font_size": 16,
    "x_tick_size": 24,
    "y_tick_size": 24,
    "legend_font_size": 24,
    "legend_column_spacing": 0.6,
    "legend_handle_pad": 0.3,
    "note_font_size": 18,
    "note_width_chars": 48,
}

CATALOGUE: tuple[Entry, ...] = (
    Entry(
        "fig1",
        "Performance trend against Moore's law",
        "fig1_perf_trends.py",
        (PERFORMANCE,),
        "case_studies:compute_fig1",
        "draw_fig1",
        {
            "margins": {"left": 0.96, "right": 3.9, "bottom": 1.15, "top": 0.9},
            "figsize": (12, 8),
            "font_size": 24,
            "log_base": 2,
            "y_limits": (1, 64),
            "styles": {
                "ResNet": ("blue", "D"),
                "3D U-Net": ("red", "s"),
                "RetinaNet": ("purple", "^"),
                "Mask R-CNN": ("yellowgreen", "D"),
                "DLRM": ("teal", "o"),
                "GPT-J": ("salmon", "^"),
                "Stable Diffusion v2": ("green", "X"),
                "Moore's Law": ("gold", "o"),
            },
            "legend_columns": 4,
            "legend_font_size": 20,
            "x_tick_size": 20,
            "y_tick_size": 20,
            "x_label": "MLPerf Inference Benchmark Version",
            "y_label": "Normalized Performance",
            "tick_rotation": 45,
            "top_format": "%m/%y",
        },
    ),
    Entry(
        "fig2",
        "Minimum and maximum power per scale",
        "fig2_power_scales.py",
        (TINY, EDGE, DATACENTER, TRAINING),
        "power_scales:compute_fig2",
        "draw_fig2",
        {
            "margins": {"left": 1.17, "right": 0.1, "bottom": 0.92, "top": 0.78},
            "figsize": (12, 6),
            "font_size": 26,
            "label_font_size": 15,
            "label_offset_points": 3,
            "y_tick_size": 20,
            "legend_font_size": 24,
            "offset": 0.2,  # upstream 0.175: a gap between a scale's two bars keeps each label off its neighbour
            "width": 0.35,
            "min_colors": ["blue", "red", "green", "purple"],
            "max_colors": ["lightblue", "lightcoral", "lightgreen", "violet"],
            "legend": {"Minimum Power": "dimgrey", "Maximum Power": "lightgrey"},
            "y_margin": (2.0, 5.0),
            "x_label": "System Type",
            "y_label": "Power Consumption (W)",
        },
    ),
    Entry(
        "fig5a",
        "Datacenter efficiency trends",
        "fig5a_datacenter_trends.py",
        (DATACENTER,),
        "trends:compute_fig5a",
        "draw_trend",
        {
            "margins": {"left": 2.9, "right": 4.3, "bottom": 1.55, "top": 1.2},
            **TREND_LOOK,
            "markers": ["o", "s", "D", "P", "^", "o", "s"],
            "colors": ["blue", "red", "green", "purple", "orange", "brown", "grey"],
            "duplicate_single_point_days": 1,
            "power_of_ten_ticks": True,
        },
    ),
    Entry(
        "fig5b",
        "Edge efficiency trends",
        "fig5b_edge_trends.py",
        (EDGE,),
        "trends:compute_fig5b",
        "draw_trend",
        {
            "margins": {"left": 2.84, "right": 3.23, "bottom": 1.55, "top": 1.06},
            **TREND_LOOK,
            "markers": ["o", "s", "D", "P"],
            "colormap": "tab10",
            "fixed_y": "fig5b",
            "top_tick_size": 24,
            "y_tick_labels": ["10⁰", "5 × 10⁰", "10¹"],
        },
    ),
    Entry(
        "fig5c",
        "Tiny efficiency trends",
        "fig5c_tiny_trends.py",
        (TINY,),
        "trends:compute_fig5c",
        "draw_trend",
        {
            "margins": {"left": 2.02, "right": 3.66, "bottom": 1.55, "top": 1.2},
            **TREND_LOOK,
            "markers": ["o", "s", "D", "P"],
            "colormap": "tab10",
            "x_label": "MLPerf Tiny Benchmark Version",
        },
    ),
    Entry(
        "fig6",
        "Llama2-70B LoRA training energy",
        "fig6_training_energy.py",
        (TRAINING,),
        "case_studies:compute_fig6",
        "draw_fig6",
        {
            "margins": {"left": 0.88, "right": 0.97, "bottom": 0.86, "top": 0.66},
            "figsize": (11, 6),
            "font_size": 24,
            "width": 0.35,
            "bar_colors": ["lightblue", "lightcoral"],
            "line_color": "red",
            "legend_columns": 3,
            "legend_font_size": 18,
            "legend_column_spacing": 0.5,
            "legend_handle_pad": 0.4,
            "legend_handle_length": 1.5,
            "legend_labels": {
                "Compute Energy": "Compute Energy (MJ)",
                "Interconnect Energy": "Interconnect Energy (MJ)",
                "Total Energy": "Total Energy (MJ)",
                "Time to Train": "Time-to-Train (mins)",
            },
            "y_tick_size": 20,
            "x_label": "Number of Accelerators",
            "y_label": "Energy (MJ)",
            "y2_label": "Time-to-Train (mins)",
            "y2_label_pad": 10,
        },
    ),
    Entry(
        "fig7",
        "Energy per inference against MACs",
        "fig7_workload_insights.py",
        (DATACENTER, TINY),
        "case_studies:compute_fig7",
        "draw_fig7",
        {
            "margins": {"left": 1.61, "right": 1.25, "bottom": 1.95, "top": 1.1},
            "figsize": (14, 7),
            "font_size": 28,
            "group_colors": {"datacenter": "lightblue", "tiny": "lightcoral"},
            "group_labels": {"datacenter": "Datacenter", "tiny": "Tiny"},
            "mac_color": "green",
            "mac_label": "MAC Operations",
            "tick_rotation": 30,
            "marker_divisor": 5,
            "marker_size": 200,
            "legend_marker_size": 13,
            "legend_font_size": 20,
            "legend_columns": 4,
            "x_tick_size": 20,
            "y_tick_size": 20,
            "y2_label_pad": 10,
            "token_panel": {"width": 1.25, "gap": 1.7, "right": 0.1},  # inches, per workload
            "token_color": "lightsteelblue",
            "token_label": "Datacenter (J/token)",
            "token_y_label": "Energy per Token\n(Joules/Token)",
            "category_styles": {
                "Computer Vision": ("blue", "o"),
                "Recommendation": ("teal", "s"),
                "Language": ("red", "D"),
                "Generative AI": ("purple", "^"),
                "Anomaly Detection": ("grey", "P"),
            },
            "x_label": "Workload",
            "y_label_size": 24,
            "y_label": "Energy per Inference\n(Joules/Sample)",
            "y2_label": "Total MAC Operations",
        },
    ),
    Entry(
        "fig8",
        "BERT accuracy-target efficiency gap",
        "fig8_accuracy_efficiency_histogram.py",
        (DATACENTER,),
        "histograms:compute_fig8",
        "draw_histogram",
        {"margins": {"left": 0.82, "right": 0.1, "bottom": 0.87, "top": 0.1}, **HIST_LOOK, "tick_size": 16},
    ),
    Entry(
        "fig9",
        "BERT-99.9 efficiency relative to BERT-99.0",
        "fig9_quantization.py",
        (DATACENTER,),
        "case_studies:compute_fig9",
        "draw_fig9",
        {
            "margins": {"left": 1.95, "right": 0.1, "bottom": 0.78, "top": 0.78},
            "figsize": (12, 5.5),
            "font_size": 24,
            "width": 0.35,
            "colors": ["lightblue", "lightcoral"],
            "y_ticks": (0.0, 1.0, 0.25),
            "legend_columns": 2,
            "legend_labels": {"BERT-99.0": "BERT-99.0 Low Accuracy", "BERT-99.9": "BERT-99.9 High Accuracy"},
            "x_tick_size": 18,
            "x_label": "MLPerf Inference Benchmark Version",
            # The paper's words, on three lines: on two they are taller than the figure.
            "y_label": "Energy Efficiency\n(Samples/Joule)\nNormalized to BERT-99.0",
            "y_label_size": 20,
        },
    ),
    Entry(
        "fig10",
        "Efficiency change for the same hardware",
        "fig10_software_delta_histogram.py",
        (DATACENTER,),
        "histograms:compute_fig10",
        "draw_histogram",
        {"margins": {"left": 0.85, "right": 0.1, "bottom": 0.9, "top": 0.1}, **HIST_LOOK, "tick_size": 18},
    ),
    Entry(
        "fig11a",
        "Software optimisation on one edge system",
        "fig11a_software_optimizations.py",
        (EDGE,),
        "case_studies:compute_fig11a",
        "draw_ratios",
        {
            "margins": {"left": 1.12, "right": 0.1, "bottom": 0.92, "top": 0.78},
            **RATIO_LOOK,
            "y_top": 1.8,
            "x_label": "MLPerf ResNet Benchmark Version",
        },
    ),
    Entry(
        "fig11b",
        "TPU hardware generations",
        "fig11b_hardware_optimizations.py",
        (),
        "case_studies:compute_fig11b",
        "draw_ratios",
        {
            "margins": {"left": 0.84, "right": 0.1, "bottom": 0.98, "top": 0.78},
            **RATIO_LOOK,
            "y_top": 4.99,
            "x_label": "Hardware Version",
            "x_tick_size": 28,
            "y_tick_size": 28,
        },
    ),
)

BY_NAME = {entry.name: entry for entry in CATALOGUE}
NAMES = tuple(BY_NAME)


def entry(name: str) -> Entry:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownFigure(f"unknown figure {name!r}; known: {', '.join(NAMES)}") from None


def select(names: list[str] | tuple[str, ...] | None) -> list[Entry]:
    """The named entries in catalogue order (all when ``names`` is empty)."""
    if not names:
        return list(CATALOGUE)
    wanted = {entry(n).name for n in names}
    return [e for e in CATALOGUE if e.name in wanted]
