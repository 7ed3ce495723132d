"""``vbayes vae --resume`` / ``vbayes resume``: killed, interrupted or diverged runs continue exactly.

A real ``vbayes vae`` process is SIGKILLed in the middle of training and resumed; a run stopped
by Ctrl-C or by a NaN loss exits (130 / 1) keeping its last good ``last.pt`` and is resumed.
Every resumed run must end with the same weights (compared tensor by tensor), metrics and
training log as one uninterrupted run with the same seed; only wall-clock timings may differ.
To save time only the SIGKILL case draws the report's figures (``no_figures`` elsewhere).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from vbayes import cli
from vbayes.studies.autoencoders import vae_report, vae_run
from vbayes.train.checkpoint import load_checkpoint
from vbayes.cli.runs import MARKER

EPOCHS = 16  # 20 steps of 64 digits per epoch
ARGS = ["vae", "--data", "digits", "--hidden", "32", "--batch-size", "64", "--epochs", str(EPOCHS),
        "--iw-samples", "10", "--seed", "3", "--threads", "1"]  # fmt: skip
STEPS_PER_EPOCH = 20
RUN_FILES = {"config.json", "metrics.json", "checkpoint.pt", "last.pt", "log.csv", "report.html", MARKER}


def _run(out: Path, *extra: str) -> int:
    return cli.main([*ARGS, "--no-progress", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run (in this process)."""
    out = tmp_path_factory.mktemp("resume_cli") / "reference"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vae_report, "autoencoder_figures", lambda run: [])
        assert _run(out) == 0
    return out


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report without its figures (drawing them takes longer than training here)."""
    monkeypatch.setattr(vae_report, "autoencoder_figures", lambda run: [])


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def _log(out: Path) -> list[dict[str, str]]:
    with open(out / "log.csv") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def assert_same_run(out: Path, ref: Path) -> None:
    """Same files, bit-identical weights, metrics and log as the reference (timings aside)."""
    assert {p.name for p in out.iterdir()} - {"figures"} == RUN_FILES  # no .staging-* folder, no temporary file
    for name in ("checkpoint.pt", "last.pt"):
        got, want = _state(out / name), _state(ref / name)
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), f"{name}: {key} differs"
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == load_checkpoint(ref / "checkpoint.pt")["epoch"]
    untimed = lambda m: {k: v for k, v in m.items() if "seconds" not in k}  # noqa: E731
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (out, ref))
    assert untimed(got) == untimed(want)
    assert got["epochs"] == EPOCHS
    assert _log(out) == _log(ref)


def _staging(out: Path) -> list[Path]:
    return sorted(out.glob(".staging-*"))


def test_sigkilled_vae_process_resumes_to_the_uninterrupted_result(reference: Path, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    child = subprocess.Popen([sys.executable, "-m", "vbayes", *ARGS, "--no-progress", "--out", str(out)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not any((s / "last.pt").exists() for s in _staging(out)):
            assert child.poll() is None, f"vbayes vae ended before it was killed: {child.stderr.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "vbayes vae never finished an epoch"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.stderr.close()  # type: ignore[union-attr]
    [staging] = _staging(out)
    assert not (out / "metrics.json").exists() and not (out / "last.pt").exists()
    assert 1 <= load_checkpoint(staging / "last.pt")["epoch"] < EPOCHS  # killed during training
    # a fresh run must not silently discard the unfinished one
    assert _run(out) == 2
    assert "unfinished run" in capsys.readouterr().err
    assert cli.main(["resume", "--out", str(out)]) == 0
    assert f"--out {out} --resume" in capsys.readouterr().out
    assert_same_run(out, reference)
    assert len(list((out / "figures").glob("*.png"))) == 6


REAL_LOSS = vae_run.vae_loss_fn


def _failing_loss(kind: str, at_step: int) -> Any:
    """A ``vae_loss_fn`` whose loss is NaN (or that raises KeyboardInterrupt) at one global step."""
    real = REAL_LOSS

    def make(options: Any) -> Any:
        inner = real(options)

        def loss_fn(model: Any, batch: Any, ctx: Any) -> Any:
            loss, logs = inner(model, batch, ctx)
            if ctx.training and ctx.step == at_step:
                if kind == "interrupt":
                    raise KeyboardInterrupt
                loss = loss * float("nan")
            return loss, logs

        return loss_fn

    return make


@pytest.mark.parametrize(("kind", "status"), [("nan", 1), ("interrupt", 130)])
def test_failed_run_keeps_its_last_good_epoch_and_resumes(
    reference: Path, no_figures: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, kind: str, status: int
) -> None:
    out = tmp_path / "run"
    at_step = 2 * STEPS_PER_EPOCH + 4  # the 5th step of epoch 3
    with monkeypatch.context() as patch:
        patch.setattr(vae_run, "vae_loss_fn", _failing_loss(kind, at_step))
        assert _run(out) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    if kind == "nan":
        assert "training diverged" in err and f"epoch 3, step 5/{STEPS_PER_EPOCH}" in err
        assert f"last good checkpoint: {out / 'last.pt'} (epoch 2)" in err
    assert {p.name for p in out.iterdir()} == {"last.pt", MARKER}  # nothing half-written, no staging folder
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    assert cli.main(["resume", "--out", str(out)]) == 0
    assert_same_run(out, reference)


def test_interrupted_resume_keeps_the_resumed_progress(
    reference: Path, no_figures: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Ctrl-C in epoch 2, resume, Ctrl-C again in epoch 5: the second last.pt is kept (epoch 4)."""
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(vae_run, "vae_loss_fn", _failing_loss("interrupt", STEPS_PER_EPOCH + 3))
        assert _run(out) == 130
        assert load_checkpoint(out / "last.pt")["epoch"] == 1
        patch.setattr(vae_run, "vae_loss_fn", _failing_loss("interrupt", 4 * STEPS_PER_EPOCH + 3))
        assert _run(out, "--resume") == 130
    assert {p.name for p in out.iterdir()} == {"last.pt", MARKER}
    assert load_checkpoint(out / "last.pt")["epoch"] == 4
    assert _run(out, "--resume") == 0
    capsys.readouterr()
    assert_same_run(out, reference)


def test_fresh_overwrite_run_forgets_an_unfinished_one(
    reference: Path, no_figures: None, tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "run"
    stale = out / ".staging-killed"
    stale.mkdir(parents=True)
    (stale / "last.pt").write_bytes((reference / "last.pt").read_bytes())
    (out / "last.pt").write_bytes((reference / "last.pt").read_bytes())
    assert _run(out) == 2
    assert "unfinished run" in capsys.readouterr().err
    assert _run(out, "--overwrite") == 0
    assert_same_run(out, reference)


def test_error_messages_with_line_breaks_stay_on_one_line(tmp_path: Path, capsys: Any) -> None:
    for name in ("a\nb", "c\r\nd", "e\u2028f"):
        assert cli.main(["resume", "--out", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and len(err.splitlines()) == 1 and "nothing to resume" in err, err


def test_ae_resumes_after_ctrl_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, no_figures: None) -> None:
    args = ["ae", "--data", "digits", "--hidden", "16", "--batch-size", "128", "--epochs", "3", "--no-progress"]
    assert cli.main([*args, "--out", str(tmp_path / "ref")]) == 0
    real = vae_run.ae_loss_fn

    def interrupting(options: Any) -> Any:
        inner = real(options)

        def loss_fn(model: Any, batch: Any, ctx: Any) -> Any:
            if ctx.training and ctx.step == 12:  # epoch 2 (10 steps per epoch)
                raise KeyboardInterrupt
            return inner(model, batch, ctx)

        return loss_fn

    with monkeypatch.context() as patch:
        patch.setattr(vae_run, "ae_loss_fn", interrupting)
        assert cli.main([*args, "--out", str(tmp_path / "run")]) == 130
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    assert cli.main([*args, "--out", str(tmp_path / "run"), "--resume"]) == 0
    capsys.readouterr()
    for name in ("checkpoint.pt", "last.pt"):
        got, want = _state(tmp_path / "run" / name), _state(tmp_path / "ref" / name)
        assert all(torch.equal(got[k], want[k]) for k in want)
    got, want = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("run", "ref"))
    assert got["test_recon_nll"] == want["test_recon_nll"] and got["epochs"] == 3
