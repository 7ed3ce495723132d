"""Checkpoint files: weights_only loading, one-line errors for bad files, no code execution."""

from __future__ import annotations

import io
import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from test_train_common import same_weights, train_run
from vbayes.train.checkpoint import FORMAT, VERSION, get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from vbayes.errors import CheckpointError


def _assert_one_line_naming(err: pytest.ExceptionInfo[CheckpointError], path: Path) -> None:
    text = str(err.value)
    assert "\n" not in text and str(path) in text


def test_round_trip_and_atomic_write(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    payload = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "config": {"a": [1, 2.5, None, "x"]}, "n": 3}
    save_checkpoint(path, payload)
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]  # no temporary file left behind
    data = load_checkpoint(path)
    assert data["format"] == FORMAT and data["version"] == VERSION
    assert torch.equal(data["model"]["w"], payload["model"]["w"])
    assert data["config"] == payload["config"] and data["n"] == 3


def test_trainer_files_load_with_plain_weights_only_torch_load(tmp_path: Path) -> None:
    model, _ = train_run(tmp_path, 2)
    for name in ("last.pt", "checkpoint.pt"):
        data = torch.load(tmp_path / name, weights_only=True)
        assert data["format"] == FORMAT and data["version"] == VERSION and data["config"]["test"] == "regression"
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch", "step", "best_val", "bad_epochs", "rng", "history"} <= set(last)
    assert last["epoch"] == 2 and last["step"] == 2 * 6
    assert {"torch", "numpy", "python", "shuffle"} <= set(last["rng"][0])


def test_truncated_file(tmp_path: Path) -> None:
    train_run(tmp_path, 1)
    raw = (tmp_path / "last.pt").read_bytes()
    for cut in (0, 10, len(raw) // 2, len(raw) - 7):
        bad = tmp_path / f"cut{cut}.pt"
        bad.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match="unreadable") as err:
            load_checkpoint(bad)
        _assert_one_line_naming(err, bad)


def test_corrupted_bytes(tmp_path: Path) -> None:
    train_run(tmp_path, 1)
    raw = bytearray((tmp_path / "checkpoint.pt").read_bytes())
    rng = random.Random(0)
    for i in rng.sample(range(len(raw)), 200):
        raw[i] ^= 0xFF
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(raw))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(rng.getrandbits(8) for _ in range(5000)))
    for path in (bad, garbage):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        _assert_one_line_naming(err, path)


def test_missing_foreign_and_wrong_version(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist") as err:
        load_checkpoint(tmp_path / "nope.pt")
    _assert_one_line_naming(err, tmp_path / "nope.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not a vbayes checkpoint") as err:
        load_checkpoint(foreign)
    _assert_one_line_naming(err, foreign)
    plain = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), plain)
    with pytest.raises(CheckpointError, match="not a vbayes checkpoint"):
        load_checkpoint(plain)
    future = tmp_path / "future.pt"
    torch.save({"format": FORMAT, "version": VERSION + 1}, future)
    with pytest.raises(CheckpointError, match=f"version {VERSION + 1}") as err:
        load_checkpoint(future)
    _assert_one_line_naming(err, future)


class _Evil:
    """Unpickling this would create the marker file (it must never happen)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


class _EvilSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("evil", [_Evil, _EvilSystem])
def test_malicious_pickles_are_refused_and_never_run(tmp_path: Path, evil: type) -> None:
    marker = tmp_path / "marker"
    # the payload really would run when unpickled unsafely: check that first, in a sandbox copy
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(evil(probe)))
    assert probe.exists()
    files = {}
    files["raw.pt"] = pickle.dumps({"format": FORMAT, "version": VERSION, "x": evil(marker)})
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, "model": evil(marker)}, buffer)
    files["torchsave.pt"] = buffer.getvalue()
    assert zipfile.is_zipfile(io.BytesIO(files["torchsave.pt"]))
    for name, raw in files.items():
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(CheckpointError, match="refused, not executed") as err:
            load_checkpoint(path)
        _assert_one_line_naming(err, path)
        assert not marker.exists()


def test_rng_state_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    shuffle = torch.Generator().manual_seed(5)
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.normal()  # leaves a cached Gaussian in numpy's state
    save_checkpoint(tmp_path / "rng.pt", {"rng": get_rng_state(shuffle)})

    def draw() -> tuple[list[float], list[float], list[float], list[int]]:
        return (torch.rand(4).tolist(), np.random.normal(size=4).tolist(), [random.random() for _ in range(4)],
                torch.randperm(10, generator=shuffle).tolist())  # fmt: skip

    expected = draw()
    draw()  # move every stream on
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"], shuffle)
    assert draw() == expected


def test_best_checkpoint_restores_a_model(tmp_path: Path) -> None:
    from test_train_common import make_model

    model, _ = train_run(tmp_path, 3)
    fresh = make_model(seed=99)
    assert not same_weights(model, fresh)
    fresh.load_state_dict(load_checkpoint(tmp_path / "checkpoint.pt")["model"])
    assert same_weights(model, fresh)
