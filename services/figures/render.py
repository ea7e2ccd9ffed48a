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
    """Draw once, save as PNG and SVG; returns the files written."""
    from mlpower.figures import draw

    with style_context(look["font_size"]):
        figure = getattr(draw, draw_name)(data, look)
        written = []
        for suffix, options in ((".png", {"dpi": PNG_DPI}), (".svg", {"metadata": {"Date": None}})):
            path = out_dir / f"{data.name}{suffix}"
            _atomic_write(path, lambda p, o=options, s=suffix: figure.savefig(p, format=s[1:], **o))
            written.append(path)
    return written
