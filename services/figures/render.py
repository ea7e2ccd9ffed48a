"""Turn ``FigureData`` into files: one figure object saved as PNG (300 dpi) and SVG, plus its JSON.

Rendering is the whole cost of a build (the numbers take milliseconds), so each figure is laid
out once, drawn once per format, and a build may spread figures over a few worker processes.
The PNG is encoded here (``pngfile``) rather than by Pillow, whose per-row filter search cost
more than drawing the figure.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from mlpower.figures.figuredata import FigureData

STYLE_FILE = "paper.mplstyle"
PNG_DPI = 300


def style_path() -> Path:
    return Path(str(resources.files("mlpower.figures").joinpath(STYLE_FILE)))


@contextlib.contextmanager
def style_context(font_size: float) -> Iterator[None]:
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context(str(style_path())), matplotlib.rc_context({"font.size": font_size}):
        yield


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(data: FigureData, out_dir: Path, extra: dict[str, Any] | None = None) -> Path:
    path = out_dir / f"{data.name}.json"
    document = {**data.to_json(), **(extra or {})}
    _atomic_write(path, lambda p: p.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n"))
    return path


def save_figure(figure: Any, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>.png`` (300 dpi) and ``<stem>.svg`` of a drawn figure, each written atomically.

    The layout engine runs once, in the 300 dpi draw; the figure keeps those positions for the
    SVG (drawn at 72 dpi, where the same layout in inches would only be computed again). The
    PNG is the whole figure at its catalogue size: the layout keeps everything inside it.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from mlpower.figures.pngfile import write_png

    figure.set_dpi(PNG_DPI)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    figure.set_layout_engine("none")
    png = out_dir / f"{stem}.png"
    _atomic_write(png, lambda p: write_png(p, np.asarray(canvas.buffer_rgba()), PNG_DPI))
    svg = out_dir / f"{stem}.svg"
    # The SVG canvas directly, not savefig: savefig first draws the figure once more without
    # output, to run a layout engine, which is already done.
    _atomic_write(svg, lambda p: FigureCanvasSVG(figure).print_svg(p, metadata={"Date": None}))
    return [png, svg]


def render_figure(draw_name: str, data: FigureData, look: dict[str, Any], out_dir: Path) -> list[Path]:
    from mlpower.figures import draw

    with style_context(look["font_size"]):
        return save_figure(getattr(draw, draw_name)(data, look), out_dir, data.name)
