"""The PNG encoder writes exactly the pixels matplotlib rendered, at 300 dpi, readable by Pillow."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mlpower.figures.pngfile import STRIP_ROWS, encode_png
from PIL import Image


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_a_rendered_figure_round_trips_exactly() -> None:
    figure = Figure(figsize=(3, 2), dpi=300)
    ax = figure.add_subplot()
    ax.plot([0, 1, 2], [0, 1, 0], marker="o")
    ax.set_title("round trip")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    assert rgba.shape[0] > 2 * STRIP_ROWS  # several strips, so the rows across strip edges are checked
    image = _decoded(encode_png(rgba, 300, "test"))
    assert image.mode == "RGBA" and image.size == (900, 600)
    assert round(image.info["dpi"][0]) == 300 and image.info["Software"] == "test"
    assert np.array_equal(np.asarray(image), rgba)


def test_any_rgba_image_round_trips() -> None:
    rgba = np.random.default_rng(7).integers(0, 256, size=(300, 257, 4), dtype=np.uint8)
    image = _decoded(encode_png(rgba, 96))
    assert image.mode == "RGBA" and np.array_equal(np.asarray(image), rgba)


def test_refuses_what_is_not_an_rgba_image() -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4, 3), np.uint8), 300)
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4, 4), np.float32), 300)
