"""The variational auto-encoder (Kingma & Welling, 2014).

Encoder q(z|x) = N(mu(x), diag(sigma(x)^2)), prior p(z) = N(0, I), reparameterised sample
z = mu + sigma * eps, analytic KL, decoder likelihood Bernoulli (logits) or Gaussian (fixed or
learned standard deviation). All per-example quantities are in nats.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

from vbayes.layers.heads import StochasticGaussian
from vbayes.losses import diag_gaussian_log_prob, importance_weighted_log_likelihood, negative_elbo
from vbayes.models.base import ImageAutoencoder


class VAEOutput(NamedTuple):
    """Result of :meth:`VAE.forward` for a batch of ``B`` images.

    ``output``: decoder output ``(B, C, H, W)`` (logits or means); ``z``: samples ``(B, L)``;
    ``mu``, ``logvar``: parameters of q(z|x), ``(B, L)``; ``kl``: KL(q || p) per example ``(B,)``.
    """

    output: Tensor
    z: Tensor
    mu: Tensor
    logvar: Tensor
    kl: Tensor


class VAE(ImageAutoencoder):
    """A VAE on images of shape ``image_shape``.

    Args:
        arch: ``"mlp"`` (784-400-L style) or ``"conv"`` (two stride-2 convolutions).
        image_shape: ``(C, H, W)``.
        latent: latent size ``L``.
        hidden: hidden width (an int, or a sequence of widths for the MLP).
        likelihood: ``"bernoulli"`` (inputs binarised, decoder gives logits) or ``"gaussian"``
            (decoder gives means in [0, 1] through a sigmoid).
        gaussian_std: fixed Gaussian standard deviation, or ``None`` to learn it.
        beta: weight of the KL term in :meth:`loss` (1 is the ELBO).
        encoder, features, decoder: custom networks instead of ``arch``: ``encoder`` maps
            ``(B, C, H, W)`` to features ``(B, features)``; ``decoder`` maps ``(B, L)`` to the
            decoder output ``(B, C, H, W)`` used as is (no sigmoid added).
    """

    def __init__(
        self,
        arch: str = "mlp",
        image_shape: Sequence[int] = (1, 28, 28),
        latent: int = 2,
        hidden: int | Sequence[int] = 400,
        likelihood: str = "bernoulli",
        gaussian_std: float | None = None,
        beta: float = 1.0,
        *,
        encoder: nn.Module | None = None,
        features: int | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        super().__init__(arch, image_shape, latent, hidden, likelihood, gaussian_std)
        if not beta >= 0:
            raise ValueError(f"VAE: beta must be >= 0, got {beta}")
        if encoder is None and decoder is None:
            body, features, dec = self.build_networks(arch, hidden)
        elif encoder is not None and decoder is not None and features is not None:
            body, dec, arch = encoder, decoder, "custom"
            self.hparams["arch"] = arch
        else:
            raise ValueError("VAE: give encoder, features and decoder together, or none of them")
        self.encoder = body
        self.latent_layer = StochasticGaussian(features, latent)
        self.decoder = dec
        self.beta = float(beta)
        self.hparams["beta"] = self.beta

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Images ``(B, C, H, W)`` -> ``(mu, logvar)`` of q(z|x), each ``(B, L)``."""
        self.check_images(x)
        return self.latent_layer.params(self.encoder(x))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        """Encode, draw one z per example, decode. See :class:`VAEOutput` for the shapes."""
        mu, logvar = self.encode(x)
        z = self.latent_layer(mu=mu, logvar=logvar, generator=generator)
        return VAEOutput(self.decode(z), z, mu, logvar, self.latent_layer.last_kl)  # type: ignore[arg-type]

    def loss_terms(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """One-sample ``(-log p(x | z), KL(q(z|x) || p(z)))`` with z ~ q(z|x), each ``(B,)`` nats.

        The first term is the ELBO's reconstruction term estimated from one z; it is not
        :meth:`reconstruction_nll` (which decodes the mean of q(z|x), nothing sampled).
        """
        out = self(x, generator)
        return self.likelihood.nll(out.output, x), out.kl

    def loss(
        self, x: Tensor, generator: torch.Generator | None = None, kl_weight: float | None = None
    ) -> Tensor:
        """Mean over the batch of the negative ELBO with KL weight ``kl_weight`` (default ``beta``)."""
        nll, kl = self.loss_terms(x, generator)
        weight = self.beta if kl_weight is None else kl_weight
        return negative_elbo(-nll, kl, weight).mean()

    def elbo(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One-sample estimate of the ELBO per example (beta = 1), ``(B,)`` nats (negative)."""
        nll, kl = self.loss_terms(x, generator)
        return -(nll + kl)

    @torch.no_grad()
    def iwae_log_likelihood(
        self, x: Tensor, k: int = 500, chunk: int = 100, generator: torch.Generator | None = None
    ) -> Tensor:
        """Importance-weighted estimate of log p(x) with ``k`` samples of q(z|x), ``(B,)`` nats.

        Samples are drawn ``chunk`` at a time (memory ~ ``chunk * B`` decoded images) and
        combined with logsumexp. Evaluated without gradients.
        """
        mu, logvar = self.encode(x)  # (B, L)
        std = torch.exp(0.5 * logvar)
        batch = x.shape[0]

        def log_weights(n: int) -> Tensor:
            eps = torch.randn((n, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + std * eps  # (n, B, L)
            log_q = diag_gaussian_log_prob(z, mu, logvar)  # (n, B)
            log_prior = -0.5 * (z.pow(2) + math.log(2.0 * math.pi)).sum(-1)  # (n, B)
            out = self.decode(z.reshape(n * batch, -1))  # (n*B, C, H, W)
            xs = x.unsqueeze(0).expand(n, *x.shape).reshape(n * batch, *x.shape[1:])
            log_lik = self.likelihood.log_prob(out, xs).reshape(n, batch)
            return log_lik + log_prior - log_q

        return importance_weighted_log_likelihood(log_weights, k, chunk)

    def point_output(self, x: Tensor) -> Tensor:
        """``decode(mu(x))``: the decoder output at the mean of q(z|x)."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Mean images of ``n`` draws z ~ N(0, I) through the decoder, ``(n, C, H, W)``."""
        param = next(self.parameters())
        z = torch.randn((n, self.latent), generator=generator, device=param.device, dtype=param.dtype)
        return self.decode_mean(z)
