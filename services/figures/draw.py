"""Pure figure functions: plotted data and a catalogue ``look`` in, a matplotlib ``Figure`` out.

No pyplot (no global figure registry, nothing to close), the Agg backend, and no literals: every
number plotted comes from ``FigureData`` and every size, colour and label from the catalogue row.
The caller applies the shared style and the figure's base font size (``render.style_context``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator  # noqa: E402
from mlpower.figures.figuredata import FigureData  # noqa: E402
from mlpower.figures.typed import typed_values  # noqa: E402


def _date(iso: str) -> dt.date:
    return dt.date.fromisoformat(iso)


def _new(look: dict[str, Any]) -> tuple[Figure, Any]:
    figure = Figure(figsize=look["figsize"])
    return figure, figure.add_subplot()


def _version_axes(ax: Any, ticks: dict[str, str], rotation: float, top_format: str = "%m/%y") -> None:
    """Bottom ticks: round names at their dates; a top axis repeats the positions as mm/yy."""
    positions = [mdates.date2num(_date(d)) for d in ticks.values()]
    ax.xaxis.set_major_locator(FixedLocator(positions))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(list(ticks), rotation=rotation)
    top = ax.secondary_xaxis("top")
    top.xaxis.set_major_locator(FixedLocator(positions))
    top.xaxis.set_minor_locator(NullLocator())
    top.set_xticklabels([_date(d).strftime(top_format) for d in ticks.values()], rotation=rotation)
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
    _version_axes(ax, data.series["version_dates"], look["tick_rotation"], look["top_format"])
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"])
    ax.legend(loc="lower center", ncol=look["legend_columns"], bbox_to_anchor=(0.5, 1.12))
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
                ha="center",
                va="bottom",
                fontsize=look["label_font_size"],
            )
    low_margin, high_margin = look["y_margin"]
    ax.set_ylim(min(lows) / low_margin, max(highs) * high_margin)
    ax.set_yscale("log")
    ax.set_xticks(x, scales)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.tick_params(axis="y", labelsize=look["y_tick_size"])
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"])
    ax.legend(handles=[Patch(color=c, label=label) for label, c in look["legend"].items()], loc="upper left")
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
    if look.get("fixed_y"):
        fixed = typed_values()[look["fixed_y"]]
        ax.set_ylim(*fixed["y_limits"])
        ax.yaxis.set_major_locator(FixedLocator(fixed["y_ticks"]))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_yticklabels(look["y_tick_labels"])
    elif look.get("power_of_ten_ticks"):
        ax.yaxis.set_major_locator(LogLocator(base=10))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"$10^{{{int(round(np.log10(value)))}}}$"))
    ticks = data.series["version_ticks"]
    if ticks:
        _version_axes(ax, ticks, look["tick_rotation"])
        all_dates = [mdates.date2num(_date(d)) for d in ticks.values()]
        ax.set_xlim(min(all_dates) - look["date_margin_days"], max(all_dates) + look["date_margin_days"])
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"])
    if legend:
        ax.legend(title=look["legend_title"])
    return figure


def draw_fig6(data: FigureData, look: dict[str, Any]) -> Figure:
    figure, ax = _new(look)
    labels = data.series["accelerators"]
    x = np.arange(len(labels))
    values = data.series["values"]
    bottom = np.zeros(len(labels))
    handles = []
    for name, color in zip(data.series["bars"], look["bar_colors"], strict=False):
        handles.append(ax.bar(x, values[name], look["width"], bottom=bottom, color=color, label=name))
        bottom = bottom + np.asarray(values[name], dtype=float)
    ax.set_xticks(x, labels)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"])
    twin = ax.twinx()
    (line,) = twin.plot(x, values["Time to Train"], color=look["line_color"], marker="o", label="Time to Train")
    twin.set_ylabel(look["y2_label"])
    handles.append(line)
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=look["legend_columns"])
    return figure


def draw_fig7(data: FigureData, look: dict[str, Any]) -> Figure:
    figure, ax = _new(look)
    order = data.series["order"]
    groups = data.series["groups"]
    x = np.arange(len(order))
    handles = []
    position = 0
    for group in ("datacenter", "tiny"):
        values = list(groups[group].values())
        span = np.arange(position, position + len(values))
        handles.append(ax.bar(span, values, color=look["group_colors"][group], label=look["group_labels"][group]))
        position += len(values)
    ax.set_xticks(x, order, rotation=look["tick_rotation"], ha="right")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yscale("log")
    ax.set_ylabel(look["y_label"])
    every_value = [v for g in groups.values() for v in g.values()]
    top = ax  # the legend goes on the axes drawn last, so that no line crosses it
    if data.series["macs"]:
        twin = ax.twinx()
        (line,) = twin.plot(x, data.series["macs"], color=look["mac_color"], marker="o", label=look["mac_label"])
        twin.set_yscale("log")
        twin.set_ylabel(look["y2_label"])
        handles.append(line)
        top = twin
    if every_value:
        marker_y = min(every_value) / look["marker_divisor"]
        for category, members in data.series["categories"].items():
            color, marker = look["category_styles"][category]
            xs = [order.index(m) for m in members if m in order]
            ax.scatter(xs, [marker_y] * len(xs), s=look["marker_size"], color=color, marker=marker)
            handles.append(Line2D([], [], color=color, marker=marker, linestyle="", label=category))
    top.legend(handles=handles, loc="upper right")
    return figure


def draw_histogram(data: FigureData, look: dict[str, Any]) -> Figure:
    figure, ax = _new(look)
    values = data.series["values"]
    if values:
        ax.hist(values, bins=data.key_values["histogram_edges"], color=look["color"], edgecolor="none")
    ax.grid(False)
    ax.tick_params(labelsize=look["tick_size"])
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"])
    return figure


def draw_fig9(data: FigureData, look: dict[str, Any]) -> Figure:
    figure, ax = _new(look)
    versions = data.series["versions"]
    x = np.arange(len(versions))
    width = look["width"]
    ax.bar(x, data.series["BERT-99.0"], width, color=look["colors"][0], label="BERT-99.0")
    ax.bar(x + width, data.series["BERT-99.9"], width, color=look["colors"][1], label="BERT-99.9")
    ax.set_xticks(x + width / 2, versions)
    ax.xaxis.set_minor_locator(NullLocator())
    start, stop, step = look["y_ticks"]
    ax.set_yticks(np.arange(start, stop + step / 2, step))
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"])
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=look["legend_columns"])
    return figure


def draw_ratios(data: FigureData, look: dict[str, Any]) -> Figure:
    figure, ax = _new(look)
    versions = data.series["versions"]
    x = np.arange(len(versions))
    width = look["width"]
    series = data.series["values"]
    for offset, (label, values), color in zip((-width, 0.0, width), series.items(), look["colors"], strict=True):
        bars = ax.bar(x + offset, values, width, color=color, label=label)
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(
                look["label_format"].format(value),
                (bar.get_x() + bar.get_width() / 2, value),
                ha="center",
                va="bottom",
                rotation=look["label_rotation"],
                fontsize=look["label_font_size"],
            )
    ax.axhline(look["reference"], color="grey", linestyle="--")
    ax.set_ylim(top=look["y_top"])
    ax.set_xticks(x, versions)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(data.series["x_label"])
    ax.set_ylabel(look["y_label"])
    if not versions:
        ax.text(0.5, 0.5, "\n".join(data.notes), transform=ax.transAxes, ha="center", va="center", wrap=True)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(series))
    return figure
