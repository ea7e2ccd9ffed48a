"""Is a drawn figure readable? Text and legends measured with matplotlib's own renderer.

A figure is drawn once with a renderer that records every piece of text it actually draws
(so tick labels outside the view, invisible artists and empty strings never count), then:

* no two text artists overlap (rotated text is compared as the rotated rectangle it is, not
  as the much larger axis-aligned box around it);
* every text and every legend lies inside the figure;
* no text and no legend covers plotted data: a line's vertices or segments, a scatter point,
  or a bar or histogram bar.

Reference lines and bands (``axhline``, ``axvspan``: drawn in axes coordinates) are not data.
Each finding names the artists, so that a failing test says what to move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Boxes that share less than this many pixels (at the drawing dpi) do not overlap: a value
# label sitting on the top edge of its bar touches it, and that is where it belongs.
TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class Finding:
    kind: str  # "overlap" | "outside" | "covers-data"
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True)
class Box:
    """A rectangle in display pixels: centre, half sizes, and rotation (degrees)."""

    cx: float
    cy: float
    half_w: float
    half_h: float
    angle: float = 0.0

    def corners(self) -> np.ndarray:
        t = math.radians(self.angle)
        ux, uy = math.cos(t), math.sin(t)
        vx, vy = -uy, ux
        signs = ((-1, -1), (1, -1), (1, 1), (-1, 1))
        return np.array(
            [
                (
                    self.cx + a * self.half_w * ux + b * self.half_h * vx,
                    self.cy + a * self.half_w * uy + b * self.half_h * vy,
                )
                for a, b in signs
            ]
        )

    def axes(self) -> list[tuple[float, float]]:
        t = math.radians(self.angle)
        return [(math.cos(t), math.sin(t)), (-math.sin(t), math.cos(t))]

    def shrunk(self, by: float) -> Box:
        return Box(self.cx, self.cy, max(self.half_w - by, 0.0), max(self.half_h - by, 0.0), self.angle)


def _box_from_extent(x0: float, y0: float, x1: float, y1: float) -> Box:
    return Box((x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2)


def boxes_overlap(a: Box, b: Box, tolerance: float = TOLERANCE_PX) -> bool:
    """Separating-axis test on the two rectangles shrunk by ``tolerance`` (touching is not overlapping)."""
    a, b = a.shrunk(tolerance / 2), b.shrunk(tolerance / 2)
    if min(a.half_w, a.half_h, b.half_w, b.half_h) <= 0:
        return False
    pa, pb = a.corners(), b.corners()
    for axis in a.axes() + b.axes():
        project_a, project_b = pa @ axis, pb @ axis
        if project_a.max() <= project_b.min() or project_b.max() <= project_a.min():
            return False
    return True


def _contains_point(box: Box, x: float, y: float, tolerance: float = TOLERANCE_PX) -> bool:
    t = math.radians(-box.angle)
    dx, dy = x - box.cx, y - box.cy
    u = dx * math.cos(t) - dy * math.sin(t)
    v = dx * math.sin(t) + dy * math.cos(t)
    return abs(u) < box.half_w - tolerance and abs(v) < box.half_h - tolerance


def _segment_crosses(box: Box, p: np.ndarray, q: np.ndarray) -> bool:
    """Does the segment p-q pass through the (slightly shrunk) rectangle?"""
    inner = box.shrunk(TOLERANCE_PX)
    if min(inner.half_w, inner.half_h) <= 0:
        return False
    corners = inner.corners()
    axes = inner.axes()
    direction = q - p
    normal = np.array([-direction[1], direction[0]])
    candidate_axes = [np.array(a) for a in axes]
    if np.any(direction):
        candidate_axes.append(normal / (np.linalg.norm(normal) or 1.0))
    segment = np.array([p, q])
    for axis in candidate_axes:
        sa, sb = corners @ axis, segment @ axis
        if sa.max() <= sb.min() or sb.max() <= sa.min():
            return False
    return True


@dataclass
class _Text:
    label: str
    box: Box
    artist: Any
    legend: Any  # the Legend holding it, if any


def _describe(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _text_box(artist: Any, renderer: Any) -> Box:
    extent = artist.get_window_extent(renderer)
    rotation = artist.get_rotation()
    angle = rotation % 180.0
    if min(angle % 90.0, 90.0 - angle % 90.0) < 1e-9:  # upright or vertical: the box is the extent
        return _box_from_extent(extent.x0, extent.y0, extent.x1, extent.y1)
    # The axis-aligned box of a rotated rectangle has the rectangle's centre; its sides are the
    # text's unrotated extent, measured with the rotation set to 0 for a moment.
    artist.set_rotation(0)
    try:
        flat = artist.get_window_extent(renderer)
    finally:
        artist.set_rotation(rotation)
    return Box((extent.x0 + extent.x1) / 2, (extent.y0 + extent.y1) / 2, flat.width / 2, flat.height / 2, angle)


def _drawn_texts(figure: Any, renderer: Any) -> list[Any]:
    """The Text artists that put glyphs on the canvas, in drawing order (one entry per artist).

    matplotlib tells the renderer which artist a string belongs to only for one-line text, so each
    Text's ``draw`` is wrapped for the duration (on the instance, undone after) to know whose
    string the renderer is drawing. A first pass without rendering lays the figure out and makes
    the tick labels, so that the second pass sees the final positions.
    """
    from matplotlib.text import Text

    figure.draw_without_rendering()
    drawing: list[Any] = []
    drawn: dict[int, Any] = {}
    texts = list(figure.findobj(Text))
    for text in texts:
        text.draw = _tracking(text, text.draw, drawing)
    original = renderer.draw_text

    def recording(gc: Any, x: float, y: float, s: str, prop: Any, angle: float, ismath: Any = False, mtext: Any = None):
        if drawing and s.strip():
            drawn.setdefault(id(drawing[-1]), drawing[-1])
        return original(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    renderer.draw_text = recording
    try:
        figure.draw(renderer)
    finally:
        del renderer.draw_text
        for text in texts:
            del text.draw
    return list(drawn.values())


def _tracking(text: Any, draw: Any, drawing: list[Any]) -> Any:
    def tracked(renderer: Any) -> Any:
        drawing.append(text)
        try:
            return draw(renderer)
        finally:
            drawing.pop()

    return tracked


def _legend_of(artist: Any, legends: list[Any]) -> Any:
    for legend in legends:
        if artist in legend.texts or artist is legend.get_title():
            return legend
    return None


def _data_of(
    figure: Any,
) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray, bool]], list[tuple[str, Box]]]:
    """Points, polylines and bars drawn in data coordinates, in display pixels, clipped to each axes."""
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Rectangle

    points: list[tuple[str, np.ndarray]] = []
    lines: list[tuple[str, np.ndarray, bool]] = []
    bars: list[tuple[str, Box]] = []
    for ax in figure.axes:
        data_transform = ax.transData
        frame = ax.get_window_extent()
        for line in ax.lines:
            if not line.get_visible() or line.get_transform() != data_transform:
                continue  # axhline/axvline: a reference, not data
            xy = data_transform.transform(np.column_stack([line.get_xdata(orig=False), line.get_ydata(orig=False)]))
            xy = xy[np.all(np.isfinite(xy), axis=1)]
            label = f"line {line.get_label()!r}"
            has_marker = line.get_marker() not in (None, "", "None", " ", "none")
            if has_marker:
                points.append((label, _inside(xy, frame)))
            if line.get_linestyle() not in ("None", "", " ", "none"):
                lines.append((label, xy, True))
        for collection in ax.collections:
            if isinstance(collection, PathCollection) and collection.get_visible():
                offsets = collection.get_offset_transform().transform(collection.get_offsets())
                points.append((f"markers {collection.get_label()!r}", _inside(offsets, frame)))
        for patch in ax.patches:
            if (
                not (isinstance(patch, Rectangle) and patch.get_visible())
                or patch.get_data_transform() != data_transform
            ):
                continue
            extent = patch.get_window_extent()
            x0, x1 = max(extent.x0, frame.x0), min(extent.x1, frame.x1)
            y0, y1 = max(extent.y0, frame.y0), min(extent.y1, frame.y1)
            if x1 > x0 and y1 > y0:
                bars.append((f"bar {patch.get_label()!r}", _box_from_extent(x0, y0, x1, y1)))
    return points, lines, bars


def _inside(xy: np.ndarray, frame: Any) -> np.ndarray:
    if not len(xy):
        return xy
    keep = (xy[:, 0] >= frame.x0) & (xy[:, 0] <= frame.x1) & (xy[:, 1] >= frame.y0) & (xy[:, 1] <= frame.y1)
    return xy[keep]


def check(figure: Any) -> list[Finding]:
    """Every legibility problem of ``figure`` as drawn at its own dpi (empty when it reads cleanly)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.legend import Legend

    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    renderer = canvas.get_renderer()
    artists = _drawn_texts(figure, renderer)  # also runs the layout engine, so positions are final
    legends = [a for a in figure.findobj(Legend) if a.get_visible()]
    texts = [_Text(a.get_text(), _text_box(a, renderer), a, _legend_of(a, legends)) for a in artists]
    findings: list[Finding] = []

    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            if a.legend is not None and a.legend is b.legend:
                continue  # a legend lays out its own entries
            if boxes_overlap(a.box, b.box):
                findings.append(Finding("overlap", f"text {_describe(a.label)} overlaps text {_describe(b.label)}"))
    legend_boxes = []
    for legend in legends:
        extent = legend.get_window_extent(renderer)
        legend_boxes.append((legend, _box_from_extent(extent.x0, extent.y0, extent.x1, extent.y1)))
    for legend, box in legend_boxes:
        for text in texts:
            if text.legend is not legend and boxes_overlap(box, text.box):
                findings.append(
                    Finding("overlap", f"legend {_legend_name(legend)} overlaps text {_describe(text.label)}")
                )
    for i, (a, box_a) in enumerate(legend_boxes):
        for b, box_b in legend_boxes[i + 1 :]:
            if boxes_overlap(box_a, box_b):
                findings.append(Finding("overlap", f"legend {_legend_name(a)} overlaps legend {_legend_name(b)}"))

    width, height = figure.bbox.width, figure.bbox.height
    placed = [(f"text {_describe(t.label)}", t.box) for t in texts]
    placed += [(f"legend {_legend_name(legend)}", box) for legend, box in legend_boxes]
    for name, box in placed:
        corners = box.corners()
        if (
            corners[:, 0].min() < -TOLERANCE_PX
            or corners[:, 1].min() < -TOLERANCE_PX
            or corners[:, 0].max() > width + TOLERANCE_PX
            or corners[:, 1].max() > height + TOLERANCE_PX
        ):
            findings.append(Finding("outside", f"{name} reaches outside the figure"))

    points, lines, bars = _data_of(figure)
    for name, box in placed:
        for label, xy in points:
            hits = sum(_contains_point(box, x, y) for x, y in xy)
            if hits:
                findings.append(Finding("covers-data", f"{name} covers {hits} point(s) of {label}"))
        for label, xy, _ in lines:
            if any(_segment_crosses(box, xy[k], xy[k + 1]) for k in range(len(xy) - 1)):
                findings.append(Finding("covers-data", f"{name} covers part of {label}"))
        for label, bar in bars:
            if boxes_overlap(box, bar):
                findings.append(Finding("covers-data", f"{name} covers {label}"))
                break
    return findings


def _legend_name(legend: Any) -> str:
    labels = [t.get_text() for t in legend.texts]
    return _describe(", ".join(labels))
