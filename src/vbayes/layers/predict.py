"""Monte-Carlo predictive samples of a Bayesian model."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["predict"]


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, n_samples: int, reduce: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Run ``model`` on ``x`` ``n_samples`` times (fresh posterior noise each time).

    Args:
        model: a module returning a Tensor of shape ``(B, ...)``.
        x: input batch.
        n_samples: number of posterior draws S >= 1.
        reduce: return ``(mean, var)`` over the draws instead of the draws.

    Returns:
        ``(S, B, ...)`` samples, or ``(mean, var)`` each ``(B, ...)``; ``var`` is the unbiased
        sample variance (0 when S == 1). Runs under ``torch.no_grad``; the model's train/eval
        mode is left as it is.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"predict: n_samples must be a positive int, got {n_samples!r}")
    first = model(x)
    if not isinstance(first, Tensor):
        raise TypeError(f"predict: the model must return a Tensor, got {type(first).__name__}")
    if not reduce:
        out = first.new_empty((n_samples,) + tuple(first.shape))
        out[0] = first
        for s in range(1, n_samples):
            out[s] = model(x)
        return out
    # Welford's running mean and variance: memory of one output, numerically stable
    mean = first.clone()
    m2 = torch.zeros_like(first)
    for s in range(1, n_samples):
        y = model(x)
        delta = y - mean
        mean.add_(delta, alpha=1.0 / (s + 1))
        m2.addcmul_(delta, y - mean)
    var = m2 / (n_samples - 1) if n_samples > 1 else m2
    return mean, var
