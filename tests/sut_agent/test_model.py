"""The built-in network: real convolutions, deterministic from its seed."""

from __future__ import annotations

import numpy as np
from mlpower.sut_agent.model import CLASSES, Conv, build_model, random_images


def test_conv_matches_a_direct_convolution() -> None:
    rng = np.random.default_rng(3)
    conv = Conv.random(rng, 2, 3, kernel=3, stride=2)
    x = rng.standard_normal((1, 2, 5, 5), dtype=np.float32)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    w = conv.weight.reshape(3, 2, 3, 3)
    expected = np.array([[[(padded[0, :, i * 2:i * 2 + 3, j * 2:j * 2 + 3] * w[o]).sum() for j in range(3)]
                          for i in range(3)] for o in range(3)])
    np.testing.assert_allclose(conv(x)[0], expected, rtol=1e-5, atol=1e-5)


def test_predictions_are_classes_and_repeatable() -> None:
    images = random_images(4)
    first, second = build_model(seed=7), build_model(seed=7)
    logits = first.logits(images)
    assert logits.shape == (4, CLASSES)
    np.testing.assert_array_equal(first.predict(images), second.predict(images))
    assert not np.allclose(logits, build_model(seed=8).logits(images))
