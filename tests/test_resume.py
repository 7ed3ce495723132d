"""Resuming: a run killed with SIGKILL mid-epoch and resumed ends exactly like an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import shlex
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from test_train_common import curves, make_model, mse_loss, regression_data, same_weights, train_run
from vbayes import cli
from vbayes.cli import entry as cli_main
from vbayes.train.checkpoint import find_last_checkpoint, load_checkpoint
from vbayes.cli.commands._common import add_run_args, positive_int, prepare_out
from vbayes.errors import VBayesError
from vbayes.train import StepContext, TrainConfig, Trainer

SCRIPT = Path(__file__).with_name("test_train_common.py")


def test_resume_in_process_matches_uninterrupted(tmp_path: Path) -> None:
    # dropout draws from the global torch RNG, so this also checks the RNG states are restored
    ref_model, ref = train_run(None, 5)
    train_run(tmp_path, 2)  # "crashes" after epoch 2 of what will be a 5-epoch run
    model, result = train_run(tmp_path, 5, resume=True)
    assert same_weights(model, ref_model)
    assert curves(result) == curves(ref)
    assert result.best_epoch == ref.best_epoch and result.epochs_run == 5
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 5 * 6


def test_resume_of_a_finished_run_changes_nothing(tmp_path: Path) -> None:
    model, result = train_run(tmp_path, 3)
    again_model, again = train_run(tmp_path, 3, resume=True)
    assert same_weights(model, again_model) and curves(again) == curves(result)


def test_resume_without_last_checkpoint_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(VBayesError, match="nothing to resume"):
        train_run(tmp_path, 2, resume=True)


def _start_stalling_child(out: Path) -> Any:
    """Start 5 epochs of training in a child process that stalls at global step 15.

    Forked when this process runs one thread (fast: torch is already imported), else a fresh
    interpreter running tests/test_train_common.py. Returns an object with pid/poll()/wait().
    """
    if torch.get_num_threads() == 1 and hasattr(os, "fork"):
        import multiprocessing

        proc = multiprocessing.get_context("fork").Process(target=train_run, args=(out, 5), kwargs={"stall_at": 15})
        proc.start()

        class Handle:
            pid = proc.pid

            def poll(self) -> int | None:
                return proc.exitcode

            def wait(self, timeout: float) -> int | None:
                proc.join(timeout)
                return proc.exitcode

        return Handle()
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(SCRIPT), str(out), "5", "--stall-at", "15"], env=env)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    ref_model, ref = train_run(None, 5)
    # 6 steps per epoch: global step 15 is the 4th step of epoch 3 (two epochs are checkpointed)
    child = _start_stalling_child(out)
    try:
        deadline = time.monotonic() + 120
        while not (out / "stalled").exists():
            assert child.poll() is None, "the training process ended before it was killed"
            assert time.monotonic() < deadline, "the training process never reached step 15"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    model, result = train_run(out, 5, resume=True)
    assert same_weights(model, ref_model)
    assert curves(result) == curves(ref)
    assert (result.best_epoch, result.best_val) == (ref.best_epoch, ref.best_val)
    assert torch.equal(torch.tensor([r["epoch"] for r in result.history]), torch.arange(1, 6))
    assert len((out / "log.csv").read_text().splitlines()) == 1 + 5


# ---------------------------------------------------------------- `vbayes resume` and `--resume`
def _toy_register(subparsers: Any) -> None:
    """A minimal resumable command, ``vbayes toyfit``, wired the way real commands should be."""
    parser = subparsers.add_parser("toyfit")
    parser.add_argument("--epochs", type=positive_int, default=4)
    parser.add_argument("--interrupt-at", type=int, default=None)
    parser.add_argument("--nan-at", type=int, default=None)
    add_run_args(parser, "runs/toy", resumable=True)
    parser.set_defaults(func=_toy_run)


def _toy_run(args: Any) -> int:
    out = prepare_out(args.out, args.overwrite, resume=args.resume)
    command = shlex.join(["vbayes", "toyfit", "--epochs", str(args.epochs), "--seed", str(args.seed), "--out", "elsewhere"])

    def loss(model: nn.Module, batch: Any, ctx: StepContext) -> Any:
        if ctx.training and ctx.step == args.interrupt_at:
            raise KeyboardInterrupt
        value, logs = mse_loss(model, batch, ctx)
        return (value * float("nan") if ctx.training and ctx.step == args.nan_at else value), logs

    train, val = regression_data()
    cfg = TrainConfig(epochs=args.epochs, batch_size=32, lr=3e-3, seed=args.seed, progress=False)
    trainer = Trainer(make_model(args.seed), loss, cfg, out_dir=out, run_config={"command": command})
    trainer.fit(train, val, resume=find_last_checkpoint(out) if args.resume else False)
    return 0


@pytest.fixture
def toy_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    real = cli_main.discover

    def discover(package: str, subparsers: Any) -> None:
        real(package, subparsers)
        if package == "vbayes.cli.commands":
            _toy_register(subparsers)

    monkeypatch.setattr(cli_main, "discover", discover)


def test_vbayes_resume_finishes_an_interrupted_run(tmp_path: Path, toy_cli: None, capsys: Any) -> None:
    ref_model, ref = train_run(tmp_path / "ref", 4)
    out = tmp_path / "run"
    assert cli.main(["toyfit", "--out", str(out), "--seed", "7", "--interrupt-at", "9"]) == 130
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert cli.main(["resume", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"vbayes toyfit --epochs 4 --seed 7 --out {out} --resume" in printed
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == 4
    assert same_weights(last["model"], load_checkpoint(tmp_path / "ref" / "last.pt")["model"])  # final weights
    assert [(r["train_loss"], r["val_loss"]) for r in last["history"]] == curves(ref)
    assert same_weights(load_checkpoint(out / "checkpoint.pt")["model"], ref_model.state_dict())


def test_resume_flag_errors_are_one_line_exit_2(tmp_path: Path, toy_cli: None, capsys: Any) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["toyfit", "--out", str(empty), "--resume"]) == 2
    assert cli.main(["resume", "--out", str(empty)]) == 2
    assert cli.main(["toyfit", "--out", str(empty), "--resume", "--overwrite"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and "nothing to resume" in errors[0] and "nothing to resume" in errors[1]
    assert "contradict" in errors[2]
    # a last.pt from the Python API records no command line
    train_run(tmp_path / "api", 1)
    assert cli.main(["resume", "--out", str(tmp_path / "api")]) == 2
    assert "does not record the vbayes command" in capsys.readouterr().err
    # a corrupted last.pt: the checkpoint error, one line
    (tmp_path / "api" / "last.pt").write_bytes(b"PK\x03\x04 not really a zip")
    assert cli.main(["resume", "--out", str(tmp_path / "api")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreadable" in err


def test_resume_finds_last_checkpoint_in_a_staging_folder(tmp_path: Path) -> None:
    assert find_last_checkpoint(tmp_path) is None
    staged = tmp_path / ".staging-abc"
    staged.mkdir()
    (staged / "last.pt").write_bytes(b"x")
    assert find_last_checkpoint(tmp_path) == staged / "last.pt"
    (tmp_path / "last.pt").write_bytes(b"y")
    assert find_last_checkpoint(tmp_path) == tmp_path / "last.pt"


def test_cli_exits_1_on_divergence_and_the_run_resumes_from_the_last_good_epoch(
    tmp_path: Path, toy_cli: None, capsys: Any
) -> None:
    out = tmp_path / "run"
    assert cli.main(["toyfit", "--out", str(out), "--seed", "7", "--nan-at", "14"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "training diverged" in err and "epoch 3, step 3/6" in err
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    assert cli.main(["resume", "--out", str(out)]) == 0  # the recorded command has no --nan-at
    assert load_checkpoint(out / "last.pt")["epoch"] == 4
