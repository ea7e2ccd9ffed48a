"""A tiny ResNet-style image classifier in plain numpy, built in code with seeded random weights.

The built-in workloads need real inference compute without downloading anything; the weights
are random because the answers do not matter, only the work (convolutions as matrix products).
Shapes: NCHW float32 images of ``IMAGE_SHAPE``; output is the class index per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

IMAGE_SHAPE = (3, 32, 32)
CLASSES = 10

Array = NDArray[np.float32]


@dataclass(frozen=True)
class Conv:
    """A 3x3 (or 1x1) convolution with 'same' padding and a stride, weights shaped (out, in*k*k)."""

    weight: Array
    bias: Array
    kernel: int
    stride: int

    @classmethod
    def random(cls, rng: np.random.Generator, c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> Conv:
        fan_in = c_in * kernel * kernel
        weight = rng.standard_normal((c_out, fan_in), dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        return cls(weight, np.zeros(c_out, dtype=np.float32), kernel, stride)

    def __call__(self, x: Array) -> Array:
        n, c, h, w = x.shape
        k, s, pad = self.kernel, self.stride, self.kernel // 2
        padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
        h_out, w_out = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
        # im2col through a strided view: (n, c, k, k, h_out, w_out) without copying until reshape.
        sn, sc, sh, sw = padded.strides
        cols = np.lib.stride_tricks.as_strided(
            padded, shape=(n, c, k, k, h_out, w_out), strides=(sn, sc, sh, sw, sh * s, sw * s), writeable=False
        )
        cols2d = cols.transpose(1, 2, 3, 0, 4, 5).reshape(c * k * k, n * h_out * w_out)
        out = self.weight @ cols2d + self.bias[:, None]
        return out.reshape(-1, n, h_out, w_out).transpose(1, 0, 2, 3)


def relu(x: Array) -> Array:
    return np.maximum(x, 0, out=x)


@dataclass(frozen=True)
class ResidualBlock:
    conv1: Conv
    conv2: Conv
    shortcut: Conv | None  # a 1x1 projection when the shape changes

    def __call__(self, x: Array) -> Array:
        y = self.conv2(relu(self.conv1(x)))
        identity = self.shortcut(x) if self.shortcut is not None else x
        return relu(y + identity)


@dataclass(frozen=True)
class TinyResNet:
    stem: Conv
    blocks: tuple[ResidualBlock, ...]
    fc_weight: Array
    fc_bias: Array

    def logits(self, images: Array) -> Array:
        x = relu(self.stem(images))
        for block in self.blocks:
            x = block(x)
        pooled = x.mean(axis=(2, 3))
        return pooled @ self.fc_weight + self.fc_bias

    def predict(self, images: Array) -> NDArray[np.int32]:
        return self.logits(images).argmax(axis=1).astype(np.int32)


def build_model(seed: int = 0, width: int = 16) -> TinyResNet:
    """Stem, two blocks at ``width`` channels, one down-sampling block at twice the width, a classifier."""
    rng = np.random.default_rng(seed)
    c1, c2 = width, 2 * width
    blocks = (
        ResidualBlock(Conv.random(rng, c1, c1), Conv.random(rng, c1, c1), None),
        ResidualBlock(Conv.random(rng, c1, c1), Conv.random(rng, c1, c1), None),
        ResidualBlock(Conv.random(rng, c1, c2, stride=2), Conv.random(rng, c2, c2), Conv.random(rng, c1, c2, 1, 2)),
    )
    fc = rng.standard_normal((c2, CLASSES), dtype=np.float32) * np.float32(np.sqrt(1.0 / c2))
    return TinyResNet(Conv.random(rng, IMAGE_SHAPE[0], c1), blocks, fc, np.zeros(CLASSES, dtype=np.float32))


def random_images(count: int, seed: int = 1) -> Array:
    return np.random.default_rng(seed).standard_normal((count, *IMAGE_SHAPE), dtype=np.float32)
