"""The negative ELBO per example, with the KL scaled the one correct way."""

from __future__ import annotations

from torch import Tensor, nn

from vbayes.layers.base import kl_divergence

__all__ = ["elbo_loss"]


def elbo_loss(nll: Tensor, model: nn.Module, dataset_size: int) -> Tensor:
    """Negative ELBO per training example: ``mean(nll) + kl_divergence(model) / dataset_size``.

    Args:
        nll: negative log-likelihood of each example of the mini-batch, shape ``(B,)`` (any
            shape is averaged over all elements; a 0-dim tensor is taken as the batch mean),
            in nats per example.
        model: the model whose Bayesian modules' KL enters the bound.
        dataset_size: number of training examples N (the KL is paid once per epoch).

    Returns:
        0-dim tensor, nats per example; minimising it maximises the ELBO / N.
    """
    if isinstance(dataset_size, bool) or not isinstance(dataset_size, int) or dataset_size < 1:
        raise ValueError(f"elbo_loss: dataset_size must be a positive int, got {dataset_size!r}")
    return nll.mean() + kl_divergence(model) / dataset_size
