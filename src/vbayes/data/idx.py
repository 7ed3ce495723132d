"""The IDX file format of MNIST-like data sets: reading a file (raw or gzipped) and finding one."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from vbayes.errors import DataError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""The four files of an IDX data set (images and labels of the training and test sets)."""


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (raw or gzipped) into an array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:  # type: ignore[operator]
            data = handle.read()
    except (OSError, EOFError, zlib.error) as err:  # zlib.error: a corrupt gzip stream
        raise DataError(f"cannot read IDX file {path}: {err}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    if ndim == 0:
        raise DataError(f"{path} is not an IDX data file: its header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated (header of {ndim} dimensions incomplete)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(dims)) if dims else 0
    if len(data) - header != count:
        raise DataError(f"{path} holds {len(data) - header} bytes of data, expected {count} for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def find_idx(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` or ``directory/stem.gz``, whichever exists (None if neither)."""
    for name in (stem, stem + ".gz"):
        if (directory / name).exists():
            return directory / name
    return None
