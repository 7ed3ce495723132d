"""Likelihoods, the ELBO and the importance-weighted estimate of log p(x).

Every function returns values per example, in nats, so that callers can average (the
training loss: negative ELBO per example) or sum as they need. Conventions: a batch has
``B`` examples, images ``(B, C, H, W)`` or any ``(B, ...)`` shape, latents ``(B, L)``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vbayes.layers.base import _local_batch_sizes, global_kl, local_kl
from vbayes.layers.heads import standard_normal_kl

__all__ = [
    "elbo_loss",
    "gaussian_nll",
    "LIKELIHOODS",
    "bernoulli_log_likelihood",
    "bernoulli_nll",
    "gaussian_log_likelihood",
    "diag_gaussian_log_prob",
    "standard_normal_kl",
    "negative_elbo",
    "kl_weight",
    "log_mean_exp",
    "importance_weighted_log_likelihood",
    "normal_cdf",
]

LIKELIHOODS = ("bernoulli", "gaussian")
_LOG_2PI = math.log(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """-log p(x | logits) of independent Bernoulli pixels (the cross-entropy), summed per example.

    ``logits`` and ``x`` are ``(B, ...)`` (``x`` in {0, 1}, or in [0, 1] for the continuous
    cross-entropy); returns ``(B,)`` nats. Numerically stable for any logit.
    """
    if logits.shape != x.shape:
        raise ValueError(f"bernoulli_nll: logits {tuple(logits.shape)} and x {tuple(x.shape)} differ")
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x | logits) of independent Bernoulli pixels, summed per example: ``-bernoulli_nll``, ``(B,)`` nats."""
    return -bernoulli_nll(logits, x)


def normal_cdf(z: Tensor) -> Tensor:
    """Standard normal CDF, elementwise, by ``erfc``: accurate in the lower tail, where
    ``torch.special.ndtr`` and ``(1 + erf) / 2`` round to 0 below about -8."""
    return 0.5 * torch.erfc(z * -_INV_SQRT_2)


def gaussian_nll(mean: Tensor, std: Tensor | float, x: Tensor) -> Tensor:
    """Elementwise Gaussian negative log-density ``-log N(x | mean, std^2)`` in nats; shapes
    broadcast (e.g. ``(B,)`` per regression target)."""
    std_t = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    return 0.5 * ((x - mean) / std_t).pow(2) + torch.log(std_t) + 0.5 * _LOG_2PI


def gaussian_log_likelihood(mean: Tensor, x: Tensor, std: Tensor | float) -> Tensor:
    """log N(x | mean, std^2) of independent pixels, summed per example.

    ``mean`` and ``x`` are ``(B, ...)``; ``std`` is a positive float or a tensor broadcastable
    to them (a learned scalar, per-pixel or per-example scale). Returns ``(B,)`` nats.
    """
    if mean.shape != x.shape:
        raise ValueError(f"gaussian_log_likelihood: mean {tuple(mean.shape)} and x {tuple(x.shape)} differ")
    return (-gaussian_nll(mean, std, x)).expand_as(mean).flatten(1).sum(1)


def diag_gaussian_log_prob(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z | mu, diag(exp(logvar))) summed over the last dim: ``(..., L) -> (...)`` nats.

    With ``mu = 0`` and ``logvar = 0`` it is the standard-normal prior log p(z).
    """
    return (-0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + _LOG_2PI)).sum(-1)


def negative_elbo(log_likelihood: Tensor, kl: Tensor, kl_weight: float | Tensor = 1.0) -> Tensor:
    """Negative (beta-weighted) ELBO per example: ``-log p(x|z) + kl_weight * KL``, ``(B,)`` nats."""
    return kl_weight * kl - log_likelihood


def kl_weight(step: int, warmup_steps: int, beta: float = 1.0) -> float:
    """Weight of the KL term at optimisation ``step`` (0-based): linear warm-up to ``beta``.

    ``beta * min(1, (step + 1) / warmup_steps)``; with ``warmup_steps <= 0`` it is ``beta``
    from the first step. The first step already carries a small, non-zero weight.
    """
    if beta < 0:
        raise ValueError(f"kl_weight: beta must be >= 0, got {beta}")
    if warmup_steps <= 0:
        return float(beta)
    return float(beta) * min(1.0, (step + 1) / warmup_steps)


def log_mean_exp(values: Tensor, dim: int = 0) -> Tensor:
    """``log(mean(exp(values), dim))`` computed stably with logsumexp."""
    return torch.logsumexp(values, dim=dim) - math.log(values.shape[dim])


def importance_weighted_log_likelihood(
    log_weights: Callable[[int], Tensor],
    k: int,
    chunk: int = 100,
) -> Tensor:
    """Importance-weighted estimate of log p(x) from ``k`` samples, drawn ``chunk`` at a time.

    Args:
        log_weights: ``log_weights(n)`` draws ``n`` fresh samples z ~ q(z|x) for each of the
            ``B`` examples and returns ``log p(x, z) - log q(z|x)`` of shape ``(n, B)``.
        k: total number of importance samples per example (K of the IWAE bound).
        chunk: samples per call, which bounds memory to ``chunk * B`` decoder outputs.

    Returns:
        ``(B,)`` estimates ``log (1/K) sum_k w_k`` in nats. Their expectation is a lower
        bound of log p(x) (>= the ELBO), tightening to log p(x) as ``k`` grows. The chunks
        are combined with logsumexp, so the result does not depend on ``chunk`` beyond
        floating-point rounding (for the same random draws).
    """
    if k < 1 or chunk < 1:
        raise ValueError(f"importance_weighted_log_likelihood: k and chunk must be >= 1, got {k}, {chunk}")
    partial: list[Tensor] = []
    done = 0
    while done < k:
        n = min(chunk, k - done)
        lw = log_weights(n)
        if lw.dim() != 2 or lw.shape[0] != n:
            raise ValueError(f"importance_weighted_log_likelihood: log_weights({n}) returned shape {tuple(lw.shape)}, expected ({n}, B)")
        partial.append(torch.logsumexp(lw, dim=0))  # (B,)
        done += n
    return torch.logsumexp(torch.stack(partial), dim=0) - math.log(k)


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
