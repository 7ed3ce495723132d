"""Image data sets as tensors with a fixed train / validation / test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vbayes.errors import DataError


@dataclass
class ImageData:
    """An image classification data set split three ways.

    Attributes:
        name: registry name.
        x_train, x_val, x_test: ``(N, C, H, W)`` float32 pixels in [0, 1].
        y_train, y_val, y_test: ``(N,)`` int64 labels in ``[0, n_classes)``.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    n_classes: int = 10

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def n_pixels(self) -> int:
        """``C * H * W``."""
        c, h, w = self.image_shape
        return c * h * w


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a class-stratified split into three parts, each in a fixed shuffled order.

    Uses NumPy's legacy ``RandomState``, whose stream is frozen by NumPy's compatibility
    policy, so the split never changes between runs or versions.
    """
    rng = np.random.RandomState(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_val])
        parts[2].append(idx[n_train + n_val :])
    # classes interleaved in a fixed random order, so that the first examples show every digit
    out = tuple(idx[rng.permutation(len(idx))] for idx in (np.concatenate(p) for p in parts))
    return out  # type: ignore[return-value]


def check_images(name: str, x: np.ndarray, y: np.ndarray, source: str) -> None:
    """Raise :class:`DataError` for empty, non-finite, out-of-range or mismatched arrays."""
    if len(x) == 0:
        raise DataError(f"{name}: no examples in {source}")
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} images but {len(y)} labels in {source}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise DataError(f"{name}: {bad} non-finite pixel values in {source}")
    if x.min() < 0.0 or x.max() > 1.0:
        raise DataError(f"{name}: pixels outside [0, 1] after scaling in {source}")


def to_image_data(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    shape: tuple[int, int, int],
    split: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_classes: int = 10,
) -> ImageData:
    """Build an :class:`ImageData` from flat pixels ``(N, C*H*W)`` and a split of indices."""
    xt = torch.as_tensor(x, dtype=torch.float32).reshape(-1, *shape)
    yt = torch.as_tensor(y, dtype=torch.int64)
    tr, va, te = (torch.as_tensor(s, dtype=torch.int64) for s in split)
    return ImageData(name, xt[tr], yt[tr], xt[va], yt[va], xt[te], yt[te], n_classes)


def binarize(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A fresh Bernoulli draw of pixels ``x`` in [0, 1] (dynamic binarisation), same shape."""
    return torch.bernoulli(x, generator=generator)


def fixed_binarization(x: Tensor, seed: int = 0) -> Tensor:
    """One fixed Bernoulli draw of ``x`` (for a test set whose numbers must be stable)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.bernoulli(x.cpu(), generator=gen).to(x.device)
