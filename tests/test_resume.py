"""Resuming: a run killed with SIGKILL mid-epoch and resumed ends exactly like an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_train_common import curves, same_weights, train_run
from vbayes.checkpoint import load_checkpoint
from vbayes.errors import VBayesError

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


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    # 6 steps per epoch: global step 15 is the 4th step of epoch 3 (two epochs are checkpointed)
    child = subprocess.Popen([sys.executable, str(SCRIPT), str(out), "5", "--stall-at", "15"], env=env)
    try:
        deadline = time.monotonic() + 120
        while not (out / "stalled").exists():
            assert child.poll() is None, "the training process ended before it was killed"
            assert time.monotonic() < deadline, "the training process never reached step 15"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    model, result = train_run(out, 5, resume=True)
    ref_model, ref = train_run(None, 5)
    assert same_weights(model, ref_model)
    assert curves(result) == curves(ref)
    assert (result.best_epoch, result.best_val) == (ref.best_epoch, ref.best_val)
    assert torch.equal(torch.tensor([r["epoch"] for r in result.history]), torch.arange(1, 6))
    assert len((out / "log.csv").read_text().splitlines()) == 1 + 5
