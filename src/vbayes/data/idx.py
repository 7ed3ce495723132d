"""Registry entries for the IDX-file data sets."""

from __future__ import annotations

import os

from vbayes.data.images import ImageData
from vbayes.data.mnist import load_idx_dataset


def load_mnist(data_dir: str | os.PathLike[str] | None = None) -> ImageData:
    """MNIST from IDX files (see :func:`vbayes.data.mnist.load_idx_dataset`)."""
    return load_idx_dataset("mnist", data_dir)


def load_fashion_mnist(data_dir: str | os.PathLike[str] | None = None) -> ImageData:
    """Fashion-MNIST from IDX files (see :func:`vbayes.data.mnist.load_idx_dataset`)."""
    return load_idx_dataset("fashion-mnist", data_dir)
