"""Turn ``FigureData`` into files: one figure object saved as PNG (300 dpi) and SVG, plus its JSON.

Rendering is the whole cost of a build (the numbers take milliseconds), so each figure is drawn
once and saved twice, and a build may spread figures over a few worker processes.
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
PAD_INCHES = 0.05
PNG_COMPRESSION = 1  # zlib level: 3x faster than the default 6 for about 30 % larger files


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


def render_figure(draw_name: str, data: FigureData, look: dict[str, Any], out_dir: Path) -> list[Path]:
    """Draw once, save as PNG and SVG (cropped to what is drawn, legends above the axes included).

    At 300 dpi matplotlib's default PNG compression (zlib level 6) costs more than drawing, so the
    PNG is written with a faster level; the image is the same, the file about a third larger.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from mlpower.figures import draw

    with style_context(look["font_size"]):
        figure = getattr(draw, draw_name)(data, look)
        figure.set_dpi(PNG_DPI)
        # The tight box once, for both files: bbox_inches="tight" would lay the figure out again per file.
        crop = figure.get_tightbbox(FigureCanvasAgg(figure).get_renderer()).padded(PAD_INCHES)
        png = out_dir / f"{data.name}.png"
        _atomic_write(
            png,
            lambda p: figure.savefig(
                p, format="png", dpi=PNG_DPI, bbox_inches=crop, pil_kwargs={"compress_level": PNG_COMPRESSION}
            ),
        )
        svg = out_dir / f"{data.name}.svg"
        _atomic_write(svg, lambda p: figure.savefig(p, format="svg", bbox_inches=crop, metadata={"Date": None}))
    return [png, svg]
