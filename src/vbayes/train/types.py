"""The trainer's public data types: its config, the per-step context and the result.

Import them from :mod:`vbayes.train`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from vbayes.train import Trainer

__all__ = ["TrainConfig", "StepContext", "TrainResult", "LossFn", "Callback", "seed_everything"]


@dataclass
class TrainConfig:
    """Optimisation settings.

    ``epochs``: passes over the training set; ``batch_size``: examples per optimizer step (the
    GLOBAL batch under torchrun); ``lr``/``weight_decay``: Adam's; ``seed``: seeds torch, numpy,
    Python and the shuffle generator at the start of ``fit``; ``device``: e.g. ``"cpu"``,
    ``"cuda"``; ``early_stopping``: stop after this many epochs without a better validation loss
    (None: never); ``grad_clip``: clip the global gradient norm to this value (None: no
    clipping); ``progress``: show a tqdm bar (rank 0 only).
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    early_stopping: int | None = None
    grad_clip: float | None = None
    progress: bool = True
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": 0 < self.lr < math.inf,
            "early_stopping": self.early_stopping is None or self.early_stopping >= 1,
            "grad_clip": self.grad_clip is None or 0 < self.grad_clip < math.inf,
            "weight_decay": 0 <= self.weight_decay < math.inf,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"TrainConfig.{name} is invalid: {getattr(self, name)!r}")


@dataclass
class StepContext:
    """What a loss function may need to know about the current step.

    ``epoch`` is 0-based; ``step`` counts optimizer steps over the whole run (0-based, the
    number of steps taken before this one); ``dataset_size`` is the GLOBAL number of training
    examples (scale a KL term by ``1 / dataset_size`` for a per-example loss); ``training`` is
    False during validation.
    """

    epoch: int
    step: int
    steps_per_epoch: int
    total_steps: int
    training: bool
    dataset_size: int
    rank: int = 0
    world_size: int = 1

    @property
    def progress(self) -> float:
        """Fraction of training done before this step, in [0, 1) (for KL warm-up schedules)."""
        return self.step / max(self.total_steps, 1)


LossFn = Callable[[nn.Module, "tuple[Tensor, ...]", StepContext], "tuple[Tensor, dict[str, float | Tensor]]"]


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`.

    ``best_epoch`` is 1-based (the epoch whose weights the model holds); ``best_val`` is its
    validation loss (the training loss when there is no validation set); ``history`` has one
    dict per epoch (keys ``epoch``, ``train_loss``, ``val_loss``, ``seconds`` and the logged
    keys, validation ones prefixed ``val_``); ``seconds_per_epoch`` is the mean training time
    per epoch, validation and checkpointing excluded; ``epochs_run`` counts all finished epochs,
    including those before a resume.
    """

    best_epoch: int
    best_val: float
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds_per_epoch: float = 0.0
    epochs_run: int = 0
    stopped_early: bool = False


class Callback(Protocol):
    """Optional hooks; a callback may define any subset. Set ``trainer.should_stop`` to stop."""

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any]) -> None: ...


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random`` with ``seed``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
