"""Shared fixtures for the trainer tests: a tiny regression problem and a dropout MLP.

Also a script: ``python tests/test_train_common.py OUT EPOCHS [--stall-at STEP] [--resume]``
trains the same model in a fresh process (used by the SIGKILL/resume test). With
``--stall-at`` it writes ``OUT/stalled`` when global step STEP starts and then sleeps, so the
parent can kill it in the middle of an epoch.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # when run as a script from a checkout
    sys.path.insert(0, str(ROOT / "src"))

from vbayes.train import StepContext, TrainConfig, Trainer, TrainResult  # noqa: E402


def regression_data(n: int = 240, d: int = 6, seed: int = 123) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """A fixed linear-plus-sine regression set: ((x_train, y_train), (x_val, y_val)), 80/20 split."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, 1, generator=g)
    y = x @ w + torch.sin(2 * x[:, :1]) + 0.1 * torch.randn(n, 1, generator=g)
    cut = n * 4 // 5
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def make_model(seed: int = 0, d: int = 6, dropout: float = 0.1) -> nn.Module:
    """A 6-32-1 tanh MLP with dropout, so the forward pass consumes the global torch RNG."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 32), nn.Tanh(), nn.Dropout(dropout), nn.Linear(32, 1))


def mse_loss(model: nn.Module, batch: tuple[Tensor, ...], ctx: StepContext) -> tuple[Tensor, dict[str, Any]]:
    """Mean squared error per example, with the mean absolute error as a tensor log."""
    x, y = batch
    err = model(x) - y
    return (err**2).mean(), {"mae": err.abs().mean().detach()}


class StallAt:
    """A loss wrapper that, at global step ``step``, writes ``flag`` and sleeps (to be killed)."""

    def __init__(self, step: int, flag: Path) -> None:
        self.step, self.flag = step, flag

    def __call__(self, model: nn.Module, batch: tuple[Tensor, ...], ctx: StepContext) -> tuple[Tensor, dict[str, Any]]:
        if ctx.training and ctx.step == self.step:
            self.flag.write_text(str(ctx.step))
            time.sleep(600)
        return mse_loss(model, batch, ctx)


def train_run(out: Path | None, epochs: int, *, resume: bool = False, stall_at: int | None = None,
              batch_size: int = 32, seed: int = 7, early_stopping: int | None = None) -> tuple[nn.Module, TrainResult]:
    """Train :func:`make_model` on :func:`regression_data`; returns (model, result)."""
    train, val = regression_data()
    model = make_model(seed)
    loss = StallAt(stall_at, Path(out) / "stalled") if stall_at is not None and out is not None else mse_loss
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=3e-3, seed=seed, progress=False,
                      early_stopping=early_stopping)
    trainer = Trainer(model, loss, cfg, out_dir=out, run_config={"test": "regression", "epochs": epochs})
    return model, trainer.fit(train, val, resume=resume)


def same_weights(a: nn.Module | dict[str, Tensor], b: nn.Module | dict[str, Tensor]) -> bool:
    """True when two modules (or state dicts) hold bit-identical tensors under the same names."""
    sa = a.state_dict() if isinstance(a, nn.Module) else a
    sb = b.state_dict() if isinstance(b, nn.Module) else b
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def curves(result: TrainResult) -> list[tuple[float, float | None]]:
    """(train_loss, val_loss) per epoch: the part of the history that must repeat exactly."""
    return [(row["train_loss"], row["val_loss"]) for row in result.history]


if __name__ == "__main__":
    torch.set_num_threads(1)
    args = sys.argv[1:]
    stall = int(args[args.index("--stall-at") + 1]) if "--stall-at" in args else None
    train_run(Path(args[0]), int(args[1]), resume="--resume" in args, stall_at=stall)
