"""Pure figure functions: plotted data and a catalogue ``look`` in, a matplotlib ``Figure`` out.

No pyplot (no global figure registry, nothing to close), the Agg backend, and no literals: every
number plotted comes from ``FigureData`` and every size, colour and label from the catalogue row.
The caller applies the shared style and the figure's base font size (``render.style_context``).

Every figure is laid out by its catalogue row: the figure size and the margins around the plot
in inches (room for tick labels, axis labels and a legend above or beside the plot), so drawing
needs no layout engine, which cost more than drawing itself. Legends sit outside the plotted
area, so that no text leaves the figure, overlaps other text or hides data; ``legibility.check``
measures that, and the tests hold all 12 figures in both modes to it.
"""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedLocator,
    FuncFormatter,
    LogFormatterSciNotation,
    LogLocator,
    NullLocator,
)
from mlpower.figures.figuredata import FigureData  # noqa: E402
from mlpower.figures.typed import typed_values  # noqa: E402


def _date(iso: str) -> dt.date:
    return dt.date.fromisoformat(iso)


_SUPERSCRIPT = str.maketrans("0123456789-−", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁻")
_MATH_POWER = re.compile(r"^\$\\mathdefault\{(?:(?P<mantissa>[\d.]+)\\times)?(?P<base>\d+)\^\{(?P<exp>[-−]?\d+)\}\}\$$")


def power_text(base: int, exponent: int, mantissa: str = "") -> str:
    """``10⁻²``, ``2×10⁰``: a power in plain Unicode, drawn like the mathtext ``$10^{-2}$`` but
    without parsing TeX twice per label (once per output format), which cost more than the figure."""
    power = f"{base}{str(exponent).translate(_SUPERSCRIPT)}"
    return f"{mantissa}×{power}" if mantissa else power


class UnicodePowerFormatter(LogFormatterSciNotation):
    """matplotlib's log-axis labels (same ticks labelled, same numbers), written in Unicode."""

    def __call__(self, x: float, pos: Any = None) -> str:
        text = super().__call__(x, pos)
        match = _MATH_POWER.match(text)
        if not match:
            return text
        return power_text(int(match["base"]), int(match["exp"].replace("−", "-")), match["mantissa"] or "")


def _log_axis(axis: Any, base: int = 10) -> None:
    """Log-scale labels in Unicode, as ``LogScale`` would label them (major and minor ticks)."""
    axis.set_major_formatter(UnicodePowerFormatter(base))
    axis.set_minor_formatter(UnicodePowerFormatter(base, labelOnlyBase=False))


def _new(look: dict[str, Any]) -> tuple[Figure, Any]:
    figure = Figure(figsize=look["figsize"])
    return figure, figure.add_axes(_plot_rect(look, look["margins"]))


def _plot_rect(look: dict[str, Any], margins: dict[str, float]) -> tuple[float, float, float, float]:
    """The plot's (left, bottom, width, height) in figure fractions from margins in inches."""
    width, height = look["figsize"]
    left, right = margins["left"] / width, 1 - margins["right"] / width
    bottom, top = margins["bottom"] / height, 1 - margins["top"] / height
    return (left, bottom, right - left, top - bottom)


def _label(look: dict[str, Any], name: str) -> str:
    """A series' legend text: the catalogue's wording for it, else its name."""
    return look.get("legend_labels", {}).get(name, name)


def _legend_above(figure: Figure, look: dict[str, Any], handles: list[Any], columns: int) -> None:
    """One legend row (or a few) above the axes, outside the plotted area."""
    if handles:
        figure.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, 1.0),
            ncol=columns,
            fontsize=look.get("legend_font_size"),
            columnspacing=look.get("legend_column_spacing", 1.0),
            handletextpad=look.get("legend_handle_pad", 0.5),
            handlelength=look.get("legend_handle_length", 2.0),
        )


def _legend_beside(ax: Any, look: dict[str, Any]) -> None:
    """The legend right of the plot, not on it: every point stays visible and no legend marker
    reads as data (a legend above would collide with a top axis of dates)."""
    ax.legend(
        title=look.get("legend_title"),
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize=look.get("legend_font_size"),
        title_fontsize=look.get("legend_font_size"),
    )


def _tick_sizes(ax: Any, look: dict[str, Any]) -> None:
    if look.get("x_tick_size"):
        ax.tick_params(axis="x", labelsize=look["x_tick_size"])
    if look.get("y_tick_size"):
        ax.tick_params(axis="y", labelsize=look["y_tick_size"])


def _version_axes(ax: Any, ticks: dict[str, str], look: dict[str, Any]) -> None:
    """Bottom ticks: round names at their dates; a top axis repeats the positions as mm/yy."""
    positions = [mdates.date2num(_date(d)) for d in ticks.values()]
    rotation = look["tick_rotation"]
    ax.xaxis.set_major_locator(FixedLocator(positions))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(list(ticks), rotation=rotation, fontsize=look.get("x_tick_size"))
    top = ax.secondary_xaxis("top")
    top.xaxis.set_major_locator(FixedLocator(positions))
    top.xaxis.set_minor_locator(NullLocator())
    top.set_xticklabels(
        [_date(d).strftime(look.get("top_format", "%m/%y")) for d in ticks.values()],
        rotation=rotation,
        fontsize=look.get("top_tick_size", look.get("x_tick_size")),
    )
    ax.tick_params(axis="x", which="both", top=False)


def draw_fig1(data: FigureData, look: dict[str, Any]) -> Figure:
    figure, ax = _new(look)
    dates = [mdates.date2num(_date(d)) for d in data.series["dates"]]
    for label in data.series["labels"]:
        color, marker = look["styles"].get(label, (None, "o"))
        values = [np.nan if v is None else v for v in data.key_values[label].values()]
        ax.plot(dates, values, marker=marker, color=color, label=label, linestyle="-")
    ax.set_yscale("log", base=look["log_base"])
    ax.set_ylim(*look["y_limits"])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.grid(True, linestyle="--")
    _version_axes(ax, data.series["version_dates"], look)
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"], fontsize=look.get("y_label_size"))
    _legend_beside(ax, look)
    return figure


def _power_label(value: float) -> str:
    for limit, scale, unit in _POWER_UNITS:
        if limit(value):
            return f"{value * scale:.1f} {unit}"
    return f"{value:.1f} W"


# (test, factor, unit) in the order upstream applies them (paper-figures.md 3.2); ASCII "u" for micro.
_POWER_UNITS = (
    (lambda v: v < 1e-3, 1e6, "uW"),
    (lambda v: v < 1.0, 1e3, "mW"),
    (lambda v: v >= 1e6, 1e-6, "MW"),
    (lambda v: v >= 1e3, 1e-3, "kW"),
)


def draw_fig2(data: FigureData, look: dict[str, Any]) -> Figure:
    figure, ax = _new(look)
    scales = data.series["scales"]
    x = np.arange(len(scales))
    lows, highs = data.series["Minimum Power"], data.series["Maximum Power"]
    offset, width = look["offset"], look["width"]
    low_bars = ax.bar(x - offset, lows, width, color=look["min_colors"])
    high_bars = ax.bar(x + offset, highs, width, color=look["max_colors"])
    for bars, values in ((low_bars, lows), (high_bars, highs)):
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(
                _power_label(value),
                (bar.get_x() + bar.get_width() / 2, value),
                xytext=(0, look["label_offset_points"]),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=look["label_font_size"],
            )
    low_margin, high_margin = look["y_margin"]
    ax.set_ylim(min(lows) / low_margin, max(highs) * high_margin)
    ax.set_yscale("log")
    _log_axis(ax.yaxis)
    ax.set_xticks(x, scales)
    ax.xaxis.set_minor_locator(NullLocator())
    _tick_sizes(ax, look)
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"], fontsize=look.get("y_label_size"))
    handles = [Patch(color=c, label=label) for label, c in look["legend"].items()]
    _legend_above(figure, look, handles, len(handles))
    return figure


def draw_trend(data: FigureData, look: dict[str, Any]) -> Figure:
    figure, ax = _new(look)
    legend = data.series["legend"]
    colors = look.get("colors") or [colormaps[look["colormap"]](i) for i in range(len(legend))]
    all_labels = typed_values()[data.name]["legend"]
    for label in legend:
        index = all_labels.index(label)  # styles follow the typed legend order, even when a series is skipped
        entry = data.series["series"][label]
        dates = [mdates.date2num(_date(d)) for d in entry["dates"]]
        values = list(entry["normalized"])
        if len(dates) == 1 and look.get("duplicate_single_point_days"):
            dates.append(dates[0] + look["duplicate_single_point_days"])
            values.append(values[0])
        ax.plot(
            dates,
            values,
            marker=look["markers"][index % len(look["markers"])],
            color=colors[index % len(colors)],
            markersize=look["marker_size"],
            label=label,
        )
    ax.set_yscale("log")
    _log_axis(ax.yaxis)
    if look.get("fixed_y"):
        fixed = typed_values()[look["fixed_y"]]
        ax.set_ylim(*fixed["y_limits"])
        ax.yaxis.set_major_locator(FixedLocator(fixed["y_ticks"]))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_yticklabels(look["y_tick_labels"])
    elif look.get("power_of_ten_ticks"):
        ax.yaxis.set_major_locator(LogLocator(base=10))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: power_text(10, int(round(np.log10(value))))))
    ax.grid(True, which="major", linestyle="--", linewidth=0.5)
    ticks = data.series["version_ticks"]
    if ticks:
        _version_axes(ax, ticks, look)
        all_dates = [mdates.date2num(_date(d)) for d in ticks.values()]
        ax.set_xlim(min(all_dates) - look["date_margin_days"], max(all_dates) + look["date_margin_days"])
    _tick_sizes(ax, look)
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"], fontsize=look.get("y_label_size"))
    if legend:
        _legend_beside(ax, look)
    return figure


def draw_fig6(data: FigureData, look: dict[str, Any]) -> Figure:
    figure, ax = _new(look)
    labels = data.series["accelerators"]
    x = np.arange(len(labels))
    values = data.series["values"]
    bottom = np.zeros(len(labels))
    handles = []
    for name, color in zip(data.series["bars"], look["bar_colors"], strict=False):
        handles.append(ax.bar(x, values[name], look["width"], bottom=bottom, color=color, label=_label(look, name)))
        bottom = bottom + np.asarray(values[name], dtype=float)
    ax.set_xticks(x, labels)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"], fontsize=look.get("y_label_size"))
    twin = ax.twinx()
    (line,) = twin.plot(
        x, values["Time to Train"], color=look["line_color"], marker="o", label=_label(look, "Time to Train")
    )
    twin.set_ylabel(look["y2_label"], labelpad=look["y2_label_pad"])
    for axis in (ax, twin):
        axis.tick_params(axis="y", right=False, labelsize=look.get("y_tick_size"))
    ax.tick_params(axis="y", right=False)
    twin.tick_params(axis="y", left=False, right=True)
    handles.append(line)
    _legend_above(figure, look, handles, look["legend_columns"])
    return figure


def draw_fig7(data: FigureData, look: dict[str, Any]) -> Figure:
    """Bars of energy per inference (J/sample), a MAC line on a second axis when known, and
    category markers under the bars; a workload measured per token gets a panel of its own."""
    order = data.series["order"]
    per_token = data.series.get("per_token") or {}
    figure, ax = _new(look)
    token_ax = None
    if per_token:
        # A narrow panel at the right edge, where paper mode's MAC axis would be.
        panel = look["token_panel"]
        width = panel["width"] * len(per_token)
        ax.set_position(_plot_rect(look, {**look["margins"], "right": panel["right"] + width + panel["gap"]}))
        right_edge = look["figsize"][0] - panel["right"]
        token_ax = figure.add_axes(
            _plot_rect(look, {**look["margins"], "left": right_edge - width, "right": panel["right"]})
        )
    groups = data.series["groups"]
    x = np.arange(len(order))
    handles = []
    position = 0
    for group in ("datacenter", "tiny"):
        values = list(groups[group].values())
        span = np.arange(position, position + len(values))
        handles.append(ax.bar(span, values, color=look["group_colors"][group], label=look["group_labels"][group]))
        position += len(values)
    ax.set_xticks(x, order, rotation=look["tick_rotation"], ha="right", rotation_mode="anchor")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yscale("log")
    _log_axis(ax.yaxis)
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"], fontsize=look.get("y_label_size"))
    _tick_sizes(ax, look)
    every_value = [v for g in groups.values() for v in g.values()]
    if data.series["macs"]:
        twin = ax.twinx()
        (line,) = twin.plot(
            x, data.series["macs"], color=look["mac_color"], marker="o", linewidth=2, label=look["mac_label"]
        )
        twin.set_yscale("log")
        _log_axis(twin.yaxis)
        twin.set_ylabel(look["y2_label"], labelpad=look["y2_label_pad"])
        twin.tick_params(axis="y", labelsize=look.get("y_tick_size"))
        ax.tick_params(axis="y", right=False, which="both")
        handles.append(line)
    categories = data.series["categories"]
    if every_value:
        marker_y = min(every_value) / look["marker_divisor"]
        ax.set_ylim(bottom=marker_y / look["marker_divisor"])
        _category_markers(ax, order, categories, marker_y, look)
    if token_ax is not None:
        names = list(per_token)
        token_values = list(per_token.values())
        handles.append(
            token_ax.bar(np.arange(len(names)), token_values, color=look["token_color"], label=look["token_label"])
        )
        token_ax.set_yscale("log")
        _log_axis(token_ax.yaxis)
        token_ax.set_xticks(
            np.arange(len(names)), names, rotation=look["tick_rotation"], ha="right", rotation_mode="anchor"
        )
        token_ax.xaxis.set_minor_locator(NullLocator())
        token_ax.set_xlim(-0.75, len(names) - 0.25)
        token_ax.set_ylabel(look["token_y_label"], fontsize=look.get("y_label_size"))
        _tick_sizes(token_ax, look)
        token_marker_y = min(token_values) / look["marker_divisor"]
        token_ax.set_ylim(token_marker_y / look["marker_divisor"], max(token_values) * look["marker_divisor"])
        _category_markers(token_ax, names, categories, token_marker_y, look)
    seen = {name for members in categories.values() for name in members if name in order or name in per_token}
    for category, members in categories.items():
        if seen & set(members):
            color, marker = look["category_styles"][category]
            handles.append(
                Line2D(
                    [],
                    [],
                    color=color,
                    marker=marker,
                    linestyle="",
                    markersize=look["legend_marker_size"],
                    label=category,
                )
            )
    _legend_above(figure, look, handles, look["legend_columns"])
    return figure


def _category_markers(
    ax: Any, order: list[str], categories: dict[str, list[str]], y: float, look: dict[str, Any]
) -> None:
    for category, members in categories.items():
        color, marker = look["category_styles"][category]
        xs = [order.index(m) for m in members if m in order]
        if xs:
            ax.scatter(xs, [y] * len(xs), s=look["marker_size"], color=color, marker=marker, label=category)


def draw_histogram(data: FigureData, look: dict[str, Any]) -> Figure:
    figure, ax = _new(look)
    values = data.series["values"]
    if values:
        ax.hist(values, bins=data.key_values["histogram_edges"], color=look["color"], edgecolor="none")
    ax.grid(False)
    ax.tick_params(labelsize=look["tick_size"])
    ax.tick_params(axis="x", pad=look["x_tick_pad"])
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"], fontsize=look.get("y_label_size"))
    return figure


def draw_fig9(data: FigureData, look: dict[str, Any]) -> Figure:
    figure, ax = _new(look)
    versions = data.series["versions"]
    x = np.arange(len(versions))
    width = look["width"]
    handles = [
        ax.bar(x, data.series["BERT-99.0"], width, color=look["colors"][0], label=_label(look, "BERT-99.0")),
        ax.bar(x + width, data.series["BERT-99.9"], width, color=look["colors"][1], label=_label(look, "BERT-99.9")),
    ]
    ax.set_xticks(x + width / 2, versions)
    ax.xaxis.set_minor_locator(NullLocator())
    start, stop, step = look["y_ticks"]
    ax.set_yticks(np.arange(start, stop + step / 2, step))
    _tick_sizes(ax, look)
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"], fontsize=look.get("y_label_size"))
    _legend_above(figure, look, handles, look["legend_columns"])
    return figure


def draw_ratios(data: FigureData, look: dict[str, Any]) -> Figure:
    figure, ax = _new(look)
    versions = data.series["versions"]
    x = np.arange(len(versions))
    width = look["width"]
    series = data.series["values"]
    handles = []
    if versions:
        for offset, (label, values), color in zip((-width, 0.0, width), series.items(), look["colors"], strict=True):
            bars = ax.bar(x + offset, values, width, color=color, label=_label(look, label))
            handles.append(bars)
            for bar, value in zip(bars, values, strict=True):
                ax.annotate(
                    look["label_format"].format(value),
                    (bar.get_x() + bar.get_width() / 2, value),
                    xytext=look["label_offset_points"],
                    textcoords="offset points",
                    # Anchored at the start of the text: rotated, it rises away from its bar and
                    # never leans over the bar beside it.
                    ha="left",
                    va="bottom",
                    rotation=look["label_rotation"],
                    rotation_mode="anchor",
                    fontsize=look["label_font_size"],
                )
    ax.axhline(look["reference"], color="grey", linestyle="--")
    ax.set_ylim(top=look["y_top"])
    ax.set_xticks(x, versions)
    ax.xaxis.set_minor_locator(NullLocator())
    _tick_sizes(ax, look)
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"], fontsize=look.get("y_label_size"))
    if not versions:
        # Nothing to plot: say why in the empty plot, wrapped to its width, and draw no empty legend.
        note = "\n".join(textwrap.fill(n, look["note_width_chars"]) for n in data.notes)
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", fontsize=look["note_font_size"])
    _legend_above(figure, look, handles, len(handles))
    return figure
