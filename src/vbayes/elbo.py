"""The negative ELBO per example, with each KL scaled the one correct way."""

from __future__ import annotations

from torch import Tensor, nn

from vbayes.layers.base import _local_batch_sizes, global_kl, local_kl

__all__ = ["elbo_loss"]


def elbo_loss(nll: Tensor, model: nn.Module, dataset_size: int) -> Tensor:
    """Negative ELBO per training example (nats per example), for a mini-batch of B examples::

        mean(nll) + global_kl(model) / dataset_size + local_kl(model)

    * ``global_kl``: the KL of the weights of the model's Bayesian layers (``kl_scope ==
      "global"``), nats per data set, paid once per pass over the N training examples: / N.
    * ``local_kl``: the KL of per-example latent variables of stochastic hidden units such as
      :class:`vbayes.StochasticGaussian` (``kl_scope == "local"``) in the last forward pass,
      which each example pays itself: the batch mean, i.e. their summed KL / B.

    Call it right after the forward pass of the batch whose ``nll`` it is given.

    Args:
        nll: negative log-likelihood of each example of the mini-batch, a tensor of shape
            ``(B,)`` in nats per example (any shape is averaged over all elements; a 0-dim
            tensor is taken as the batch mean).
        model: the model whose Bayesian modules' KL enters the bound.
        dataset_size: number of training examples N (the weight KL is paid once per epoch).

    Returns:
        0-dim tensor, nats per example; minimising it maximises the ELBO / N.

    Raises:
        ValueError: ``nll`` is not a non-empty floating-point tensor, ``dataset_size`` is not a
            positive int, or ``nll`` has a batch dimension whose size differs from the number of
            examples of a stochastic layer's last forward pass (its KL would belong to another
            batch).
    """
    if not isinstance(nll, Tensor):
        raise ValueError("elbo_loss: nll must be a tensor of per-example negative log-likelihoods "
                         f"(nats), got {type(nll).__name__}")
    if not nll.is_floating_point():
        raise ValueError(f"elbo_loss: nll must be a real floating-point tensor, got dtype {nll.dtype}")
    if nll.numel() == 0:
        raise ValueError(f"elbo_loss: nll is empty (shape {tuple(nll.shape)}); the ELBO of no example is undefined")
    if isinstance(dataset_size, bool) or not isinstance(dataset_size, int) or dataset_size < 1:
        raise ValueError(f"elbo_loss: dataset_size must be a positive int, got {dataset_size!r}")
    if nll.dim() >= 1:
        for name, batch in _local_batch_sizes(model).items():
            if batch != nll.shape[0]:
                raise ValueError(f"elbo_loss: nll holds {nll.shape[0]} examples but the last forward pass of "
                                 f"{name} saw {batch}; compute nll from the forward pass just before")
    return nll.mean() + global_kl(model) / dataset_size + local_kl(model)
