"""Probabilistic output heads and stochastic hidden units.

* :class:`GaussianHead` turns features into a ``torch.distributions.Normal`` (heteroscedastic
  regression head): mean from one linear map, standard deviation ``softplus(.) + min_std``.
* :class:`StochasticGaussian` is a layer of Gaussian stochastic units: it maps features to the
  mean and log-variance of q(z|x) = N(mu, diag(sigma^2)), draws the reparameterised sample
  z = mu + sigma * eps and remembers KL(q(z|x) || N(0, I)) of that forward pass, which it returns
  from :meth:`~StochasticGaussian.kl_divergence` like every :class:`BayesianModule`. That KL is
  *local* (``kl_scope = "local"``): each example pays its own, so :func:`vbayes.elbo_loss` takes
  its batch mean, not its sum over N as for a layer's weight KL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from vbayes.layers.base import BayesianModule


class GaussianHead(nn.Module):
    """Linear head predicting a Normal distribution per output.

    Args:
        in_features: size ``F`` of the input features.
        out_features: number ``D`` of predicted outputs.
        min_std: floor added to the softplus standard deviation (same units as the target).

    Forward: features ``(B, F)`` -> ``Normal`` with ``loc`` and ``scale`` of shape ``(B, D)``.
    """

    def __init__(self, in_features: int, out_features: int = 1, min_std: float = 1e-6) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"GaussianHead: in_features and out_features must be >= 1, got {in_features}, {out_features}")
        if not min_std >= 0:
            raise ValueError(f"GaussianHead: min_std must be >= 0, got {min_std}")
        self.out_features = out_features
        self.min_std = float(min_std)
        self.linear = nn.Linear(in_features, 2 * out_features)

    def forward(self, h: Tensor) -> Normal:
        """Features ``(B, F)`` -> ``Normal(loc (B, D), scale (B, D))``."""
        loc, raw = self.linear(h).chunk(2, dim=-1)
        return Normal(loc, F.softplus(raw) + self.min_std)


def standard_normal_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in nats, summed over the last dim: ``(..., L) -> (...)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


class StochasticGaussian(BayesianModule):
    """Gaussian stochastic hidden units with a standard-normal prior.

    Args:
        in_features: size ``F`` of the input features, or ``None`` when the caller supplies
            ``mu`` and ``logvar`` directly to :meth:`forward`.
        latent: number ``L`` of stochastic units.

    ``forward(h)`` maps features ``(B, F)`` to samples ``z`` of shape ``(B, L)``; after it,
    :attr:`last_kl` holds the per-example KL ``(B,)`` (nats per example), :meth:`example_kl` the
    same and :meth:`kl_divergence` its sum over the batch (nats). The KL is local
    (``kl_scope = "local"``): in the ELBO per example it enters as the batch mean of
    :meth:`example_kl` (see :func:`vbayes.local_kl`), not divided by the data-set size.
    """

    kl_scope = "local"

    def __init__(self, in_features: int | None, latent: int) -> None:
        super().__init__()
        if latent < 1:
            raise ValueError(f"StochasticGaussian: latent must be >= 1, got {latent}")
        if in_features is not None and in_features < 1:
            raise ValueError(f"StochasticGaussian: in_features must be >= 1 or None, got {in_features}")
        self.latent = latent
        self.proj = nn.Linear(in_features, 2 * latent) if in_features is not None else None
        self.last_kl: Tensor | None = None

    def params(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Features ``(B, F)`` -> ``(mu, logvar)``, each ``(B, L)``."""
        if self.proj is None:
            raise ValueError("StochasticGaussian: built with in_features=None; pass mu and logvar to forward")
        mu, logvar = self.proj(h).chunk(2, dim=-1)
        return mu, logvar

    def forward(
        self,
        h: Tensor | None = None,
        *,
        mu: Tensor | None = None,
        logvar: Tensor | None = None,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw ``z = mu + exp(logvar / 2) * eps`` (or return ``mu`` when ``sample`` is False).

        Give either features ``h`` ``(B, F)`` or both ``mu`` and ``logvar`` ``(B, L)``.
        Returns ``z`` ``(B, L)`` and stores the per-example KL to N(0, I) in :attr:`last_kl`.
        """
        if h is not None:
            if mu is not None or logvar is not None:
                raise ValueError("StochasticGaussian: give features h or (mu, logvar), not both")
            mu, logvar = self.params(h)
        elif mu is None or logvar is None:
            raise ValueError("StochasticGaussian: forward needs features h or both mu and logvar")
        self.last_kl = standard_normal_kl(mu, logvar)
        if not sample:
            return mu
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def example_kl(self) -> Tensor:
        """KL(q(z_i|x_i) || N(0, I)) of each example of the last forward pass, ``(B,)`` nats.

        The first dimension of the input indexes the examples; any further leading dimensions
        (e.g. positions of a sequence) belong to their example and are summed. An input of one
        unbatched vector ``(L,)`` is one example.
        """
        if self.last_kl is None:
            raise RuntimeError("StochasticGaussian: example_kl() called before any forward pass")
        kl = self.last_kl
        if kl.dim() == 0:
            return kl.reshape(1)
        return kl if kl.dim() == 1 else kl.flatten(1).sum(-1)

    def kl_divergence(self) -> Tensor:
        """KL(q(z|x) || N(0, I)) of the last forward pass, summed over units and examples (nats)."""
        if self.last_kl is None:
            raise RuntimeError("StochasticGaussian: kl_divergence() called before any forward pass")
        return self.last_kl.sum()
