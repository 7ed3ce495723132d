"""The data registry: embedded MNIST, sklearn digits, IDX files written by the test."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import vbayes.data as vdata
from vbayes.data.idx import read_idx
from vbayes.errors import DataError


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def make_idx_dir(root: Path, n_train: int = 24, n_test: int = 10, gz: bool = False) -> Path:
    rng = np.random.RandomState(0)
    sfx = ".gz" if gz else ""
    write_idx(root / f"train-images-idx3-ubyte{sfx}", rng.randint(0, 256, (n_train, 28, 28)), gz)
    write_idx(root / f"train-labels-idx1-ubyte{sfx}", np.arange(n_train) % 10, gz)
    write_idx(root / f"t10k-images-idx3-ubyte{sfx}", rng.randint(0, 256, (n_test, 28, 28)), gz)
    write_idx(root / f"t10k-labels-idx1-ubyte{sfx}", np.arange(n_test) % 10, gz)
    return root


def test_mnist5k_split_is_fixed_stratified_and_real() -> None:
    data = vdata.load("mnist5k")
    assert data.x_train.shape == (3500, 1, 28, 28)
    assert data.x_val.shape == (500, 1, 28, 28)
    assert data.x_test.shape == (1000, 1, 28, 28)
    assert torch.equal(data.y_train.bincount(), torch.full((10,), 350))
    assert torch.equal(data.y_test.bincount(), torch.full((10,), 100))
    assert 0.0 <= float(data.x_train.min()) and float(data.x_train.max()) == 1.0
    # real digits: roughly 19% of MNIST pixels are non-zero on average
    frac = float((data.x_train > 0).float().mean())
    assert 0.12 < frac < 0.26
    again = vdata.load("mnist5k")
    assert torch.equal(again.x_test, data.x_test) and torch.equal(again.y_val, data.y_val)
    # no example appears in two splits
    flat = lambda t: {row.numpy().tobytes() for row in t.reshape(len(t), -1)}  # noqa: E731
    assert not (flat(data.x_test) & flat(data.x_val))


def test_digits_loads_scaled() -> None:
    data = vdata.load("digits")
    n = len(data.x_train) + len(data.x_val) + len(data.x_test)
    assert n == 1797 and data.image_shape == (1, 8, 8) and data.n_pixels == 64
    assert float(data.x_train.max()) == 1.0


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(DataError, match="mnist5k"):
        vdata.load("cifar")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_loader_raw_and_gzipped(tmp_path: Path, gz: bool) -> None:
    make_idx_dir(tmp_path, gz=gz)
    data = vdata.load("mnist", data_dir=tmp_path)
    assert data.x_test.shape == (10, 1, 28, 28)
    assert len(data.x_train) + len(data.x_val) == 24
    raw = read_idx(tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else "")))
    assert torch.allclose(data.x_test[:, 0], torch.as_tensor(raw / 255.0, dtype=torch.float32))


def test_idx_loader_looks_in_named_subdirectory(tmp_path: Path) -> None:
    (tmp_path / "fashion-mnist").mkdir()
    make_idx_dir(tmp_path / "fashion-mnist")
    data = vdata.load("fashion-mnist", data_dir=tmp_path)
    assert data.x_test.shape[0] == 10


def test_missing_idx_files_say_which_and_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*" + str(tmp_path).replace("/", ".")):
        vdata.load("mnist", data_dir=tmp_path)
    monkeypatch.delenv("VBAYES_DATA", raising=False)
    with pytest.raises(DataError, match="VBAYES_DATA"):
        vdata.load("mnist")


def test_truncated_and_foreign_idx_files(tmp_path: Path) -> None:
    make_idx_dir(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="expected"):
        vdata.load("mnist", data_dir=tmp_path)
    path.write_bytes(b"not an idx file at all")
    with pytest.raises(DataError, match="magic"):
        vdata.load("mnist", data_dir=tmp_path)


def test_binarisation_dynamic_and_fixed() -> None:
    x = torch.full((20000,), 0.3)
    gen = torch.Generator().manual_seed(0)
    a, b = vdata.binarize(x, gen), vdata.binarize(x, gen)
    assert not torch.equal(a, b)  # a fresh draw each time
    se = (0.3 * 0.7 / x.numel()) ** 0.5
    assert abs(float(a.mean()) - 0.3) < 5 * se
    assert torch.equal(vdata.fixed_binarization(x, 1), vdata.fixed_binarization(x, 1))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
