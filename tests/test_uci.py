"""The UCI loader: Gal layout written by the test, the real shared folders when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vbayes.data.uci import load_uci
from vbayes.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "uci"


def write_layout(root: Path, n: int = 12, n_splits: int = 2) -> Path:
    rng = np.random.RandomState(0)
    table = rng.randn(n, 4)
    np.savetxt(root / "data.txt", table)
    np.savetxt(root / "index_features.txt", [0, 1, 2], fmt="%d")
    np.savetxt(root / "index_target.txt", [3], fmt="%d")
    for k in range(n_splits):
        perm = rng.permutation(n)
        np.savetxt(root / f"index_train_{k}.txt", perm[: n - 3], fmt="%d")
        np.savetxt(root / f"index_test_{k}.txt", perm[n - 3 :], fmt="%d")
    for name, v in (("n_splits", n_splits), ("n_hidden", 50), ("n_epochs", 40)):
        (root / f"{name}.txt").write_text(f"{v}\n")
    return root


def test_reads_layout_and_normalises_on_the_training_split(tmp_path: Path) -> None:
    u = load_uci(write_layout(tmp_path))
    assert u.n_splits == 2 and u.n_hidden == 50 and u.n_epochs == 40 and u.x.shape == (12, 3)
    d = u.split(1)
    assert d.x_train.shape == (9, 3) and d.x_test.shape == (3, 3)
    table = np.loadtxt(tmp_path / "data.txt")
    tr = np.loadtxt(tmp_path / "index_train_1.txt", dtype=int)
    np.testing.assert_allclose(d.y_train.numpy(), table[tr, 3], rtol=1e-6)
    xs, ys = d.meta["x_scaler"], d.meta["y_scaler"]
    np.testing.assert_allclose(xs.mean.numpy(), table[tr, :3].mean(0))
    np.testing.assert_allclose(ys.std.numpy(), table[tr, 3].std())
    z = xs.transform(d.x_train)
    assert torch.allclose(z.mean(0), torch.zeros(3), atol=1e-5)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: (r / "index_target.txt").unlink(), "missing index_target.txt"),
        (lambda r: (r / "index_test_1.txt").unlink(), "missing index_test_1.txt"),
        (lambda r: (r / "index_train_0.txt").write_text("0\n99\n"), "outside"),
        (lambda r: (r / "data.txt").write_text("1 2 3\n4 5\n"), "malformed"),
        (lambda r: (r / "n_splits.txt").write_text("two\n"), "integers"),
        (lambda r: (r / "index_train_0.txt").write_text("0\n"), "at least 2"),
    ],
)
def test_wrong_layout_is_a_one_line_data_error(tmp_path: Path, damage, message: str) -> None:
    damage(write_layout(tmp_path))
    with pytest.raises(DataError, match=message) as info:
        load_uci(tmp_path)
    assert "\n" not in str(info.value)


def test_nonfinite_target_and_missing_dir(tmp_path: Path) -> None:
    root = write_layout(tmp_path)
    table = np.loadtxt(root / "data.txt")
    table[2, 3] = np.nan
    np.savetxt(root / "data.txt", table)
    with pytest.raises(DataError, match="non-finite targets"):
        load_uci(root)
    with pytest.raises(DataError, match="not a directory"):
        load_uci(tmp_path / "nope")


@pytest.mark.skipif(not (SHARED / "yacht").is_dir(), reason="shared UCI folders absent")
def test_real_yacht_folder() -> None:
    u = load_uci(SHARED / "yacht")
    assert u.name == "yacht" and u.x.shape == (308, 6) and u.n_splits == 20 and u.n_hidden == 50
    d = u.split(0)
    assert len(d.x_train) + len(d.x_test) == 308
