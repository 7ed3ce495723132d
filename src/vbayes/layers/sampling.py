"""Switch a model between sampling and its posterior mean, and freeze one posterior draw.

* ``with sampling_mode(model, "mean"):`` every Bayesian module uses its posterior mean (a
  deterministic network); ``"sample"`` (the default, in train and eval mode alike) draws noise
  in every forward call.
* ``with frozen_sample(model):`` every Bayesian layer draws one weight sample on its first
  forward call inside the block and reuses it until the block ends, so the model is a single
  function drawn from the posterior; the next entry draws a new one.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from vbayes.layers._variational import VariationalLayer
from vbayes.layers.base import BayesianModule

__all__ = ["sampling_mode", "frozen_sample", "SAMPLING_MODES"]

SAMPLING_MODES = ("sample", "mean")


@contextmanager
def sampling_mode(model: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Set ``sampling`` of every :class:`BayesianModule` in ``model`` to ``mode`` for the block.

    Args:
        model: any module; non-Bayesian modules are untouched.
        mode: ``"sample"`` or ``"mean"``.

    Yields ``model``; the previous mode of each module is restored on exit (also on error).
    """
    if mode not in SAMPLING_MODES:
        raise ValueError(f"sampling_mode: mode must be one of {SAMPLING_MODES}, got {mode!r}")
    saved = [(m, m.__dict__.get("sampling")) for m in model.modules() if isinstance(m, BayesianModule)]
    try:
        for m, _ in saved:
            m.sampling = mode
        yield model
    finally:
        for m, previous in saved:
            if previous is None:
                m.__dict__.pop("sampling", None)
            else:
                m.sampling = previous


@contextmanager
def frozen_sample(model: nn.Module, generator: torch.Generator | None = None) -> Iterator[nn.Module]:
    """Reuse one weight draw per Bayesian layer across all forward calls inside the block.

    Flipout and LRT layers also use the shared weight draw inside the block (a function draw has
    one weight per layer). ``generator``, when given, is used for the draws made in the block.
    Yields ``model``; the previous state is restored on exit, so nesting is allowed.
    """
    layers = [m for m in model.modules() if isinstance(m, VariationalLayer)]
    saved = [(m, m._frozen_eps, m.generator) for m in layers]
    try:
        for m in layers:
            m._frozen_eps = {}
            if generator is not None:
                m.generator = generator
        yield model
    finally:
        for m, eps, gen in saved:
            m._frozen_eps = eps
            m.generator = gen
