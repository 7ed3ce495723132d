"""Hostile or mistaken input: one stderr line and exit status 2, never a traceback, nothing written.

The command-line cases are one table: the command, the expected status, text of its one stderr
line; afterwards ``--out`` must not exist. The Python API cases raise a clear exception naming
what was wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import nn

from test_data import make_idx_dir, write_idx
from test_uci import write_layout
from vbayes import cli
from vbayes.train.checkpoint import load_checkpoint, save_checkpoint
from vbayes.cli.runs import MARKER

VAE = ["vae", "--data", "digits", "--hidden", "16", "--batch-size", "128", "--epochs", "1", "--no-progress"]
AE = ["ae", "--data", "digits", "--hidden", "16", "--batch-size", "128", "--epochs", "1", "--no-progress"]


def _corrupt_gzip(root: Path) -> None:
    make_idx_dir(root, gz=True)
    path = root / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[20:60] = b"\xff" * 40  # the deflate stream, not the gzip header
    path.write_bytes(bytes(raw))


def _sizes_differ(root: Path) -> None:
    make_idx_dir(root)
    write_idx(root / "t10k-images-idx3-ubyte", np.zeros((10, 20, 20)))


def _zero_dims(root: Path) -> None:
    make_idx_dir(root)
    (root / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 0x08, 0]))


def _empty_uci(root: Path) -> None:
    write_layout(root)
    (root / "data.txt").write_text("")


IDX = ["vae", "--data", "mnist", "--epochs", "1", "--no-progress", "--data-dir", "{data}"]
CASES: list[tuple[str, Callable[[Path], None] | None, list[str], str]] = [
    ("corrupt gzip IDX", _corrupt_gzip, IDX, "cannot read IDX file"),
    ("train and test images of different sizes", _sizes_differ, IDX, "the training images are 28x28 pixels"),
    ("IDX header with 0 dimensions", _zero_dims, IDX, "declares 0 dimensions"),
    ("empty UCI data.txt", _empty_uci, ["uq", "--data", "uci", "--data-dir", "{data}"], "holds no data"),
    ("seed overflow", None, [*VAE, "--seed", "99999999999999999999999"], "--seed: must be in 0 .."),
    ("negative seed", None, [*VAE, "--seed", "-1"], "--seed: must be in 0 .."),
    ("uq seed overflow", None, ["uq", "--data", "toy-gap", "--seed", "99999999999999999999999"], "--seed"),
    ("--device meta", None, [*VAE, "--device", "meta"], "--device 'meta' cannot train a model here"),
    ("--hidden too large", None, [*VAE, "--hidden", "200000000000"], "more than this machine's"),
    ("bae --hidden too large", None, ["bae", "--data", "digits", "--hidden", "200000000000"], "more than this"),
    ("--iw-samples too many", None, [*VAE, "--iw-samples", "2000000000"], "--iw-samples 2000000000: the test"),
    ("bae --samples too many", None, ["bae", "--data", "digits", "--samples", "2000000000"], "--samples 2000000000"),
    ("compare-ae --iw-samples too many", None, ["compare-ae", "--data", "digits", "--iw-samples", "2000000000"],
     "--iw-samples 2000000000"),
]
if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
    CASES.append(("--device mps without one", None, [*VAE, "--device", "mps"], "no MPS"))
if not torch.cuda.is_available():
    CASES.append(("--device cuda without one", None, [*VAE, "--device", "cuda"], "no CUDA device"))
    CASES.append(("bae --device cuda:1 without one", None, ["bae", "--device", "cuda:1"], "no CUDA device"))


def run(argv: list[str], capsys: Any) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = int(stop.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("make", "argv", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_mistakes_are_one_line_exit_2(make: Any, argv: list[str], message: str, tmp_path: Path,
                                           capsys: Any) -> None:  # fmt: skip
    data = tmp_path / "data"
    data.mkdir()
    if make is not None:
        make(data)
    out = tmp_path / "out"
    code, err = run([a.format(data=data) for a in argv] + ["--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err and "Warning" not in err
    assert not out.exists()


# ---------------------------------------------------------------------- broken last.pt files
@pytest.fixture(scope="module")
def ae_last(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("ae") / "run"
    assert cli.main([*AE, "--out", str(out)]) == 0
    return (out / "last.pt").read_bytes()


def _without_dataset_size(path: Path, raw: bytes) -> None:
    path.write_bytes(raw)
    data = load_checkpoint(path)
    del data["dataset_size"]
    save_checkpoint(path, {k: v for k, v in data.items() if k not in ("format", "version")})


BROKEN = [
    ("no dataset_size", _without_dataset_size, "is not a complete last.pt (no dataset_size)"),
    ("random bytes", lambda p, raw: p.write_bytes(bytes(np.random.RandomState(0).randint(0, 256, 4000, np.uint8))),
     "is not a vbayes checkpoint"),
    ("truncated", lambda p, raw: p.write_bytes(raw[: len(raw) // 2]), "truncated"),
    ("empty", lambda p, raw: p.write_bytes(b""), "truncated"),
]


@pytest.mark.parametrize(("damage", "message"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
@pytest.mark.parametrize("how", ["--resume", "vbayes resume"])
def test_a_broken_last_pt_is_one_line_and_stays(damage: Any, message: str, how: str, ae_last: bytes, tmp_path: Path,
                                                capsys: Any) -> None:  # fmt: skip
    out = tmp_path / "run"
    out.mkdir()
    (out / MARKER).write_text("")
    damage(out / "last.pt", ae_last)
    before = (out / "last.pt").read_bytes()
    argv = [*AE, "--out", str(out), "--resume"] if how == "--resume" else ["resume", "--out", str(out)]
    code, err = run(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "last.pt"] and (out / "last.pt").read_bytes() == before


# ---------------------------------------------------------------------- `vbayes resume` replays everything
def test_resume_replays_absolute_data_dir_and_every_option(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
                                                           ) -> None:  # fmt: skip
    from vbayes import vae_run

    (tmp_path / "idx").mkdir()
    make_idx_dir(tmp_path / "idx", n_train=60, n_test=12)
    monkeypatch.chdir(tmp_path)
    real = vae_run.ae_loss_fn

    def interrupting(options: Any) -> Any:
        inner = real(options)

        def loss_fn(model: Any, batch: Any, ctx: Any) -> Any:
            if ctx.training and ctx.step == 7:  # epoch 2 (5 steps per epoch)
                raise KeyboardInterrupt
            return inner(model, batch, ctx)

        return loss_fn

    argv = ["ae", "--data", "mnist", "--data-dir", "idx", "--hidden", "8", "--batch-size", "10", "--epochs", "2",
            "--no-progress", "--out", "run"]  # fmt: skip
    with monkeypatch.context() as patch:
        patch.setattr(vae_run, "ae_loss_fn", interrupting)
        assert run(argv, capsys)[0] == 130
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative --data-dir and --out typed in another folder
    assert cli.main(["resume", "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert f"--data-dir {tmp_path / 'idx'}" in printed and "--no-progress" in printed


# ---------------------------------------------------------------------- the Python API
def test_to_bayesian_refuses_a_non_module() -> None:
    from vbayes import to_bayesian

    with pytest.raises(TypeError, match="must be a torch.nn.Module, got str"):
        to_bayesian("hello")  # type: ignore[arg-type]


@pytest.mark.parametrize("module", [nn.LSTM(3, 4), nn.Conv3d(1, 2, 3), nn.Embedding(10, 3)],
                         ids=["LSTM", "Conv3d", "Embedding"])
def test_to_bayesian_names_what_it_cannot_convert(module: nn.Module) -> None:
    from vbayes import to_bayesian

    model = nn.Sequential(module, nn.Linear(3, 2), nn.LayerNorm(2))
    name = type(module).__name__
    with pytest.warns(UserWarning, match=rf"left deterministic .*0 \({name}\)"):
        converted = to_bayesian(model)
    assert type(converted[1]).__name__ == "LinearFlipout" and type(converted[0]) is type(module)
    with pytest.raises(ValueError, match=rf"cannot convert 0 \({name}\)"):
        to_bayesian(model, strict=True)


def test_vae_loss_names_the_expected_shape_and_range() -> None:
    from vbayes.models import VAE

    model = VAE("mlp", (1, 8, 8), latent=2, hidden=8)
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 1, 8, 8\), got \(4, 64\)"):
        model.loss(torch.rand(4, 64))
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        model.loss(torch.rand(4, 1, 8, 8) * 255)
    assert torch.isfinite(model.loss(torch.rand(4, 1, 8, 8)))
    gaussian = VAE("mlp", (1, 8, 8), latent=2, hidden=8, likelihood="gaussian")
    assert torch.isfinite(gaussian.loss(torch.randn(4, 1, 8, 8) * 3))  # any real pixel values


def test_uci_run_whose_methods_all_fail_still_writes_its_report(tmp_path: Path, capsys: Any) -> None:
    """``n_hidden.txt`` asks for 2e11 hidden units: every method fails, the report step must not."""
    data = tmp_path / "uci"
    data.mkdir()
    write_layout(data)
    (data / "n_hidden.txt").write_text("200000000000\n")
    out = tmp_path / "out"
    code, err = run(["uq", "--data", "uci", "--data-dir", str(data), "--methods", "output", "--epochs", "1",
                     "--splits", "1", "--no-progress", "--out", str(out)], capsys)  # fmt: skip
    assert code == 0 and "Traceback" not in err, err
    assert (out / "report.html").is_file() and "error" in (out / "metrics.json").read_text()
