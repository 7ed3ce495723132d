"""The deterministic auto-encoder, with the same networks and likelihood as :class:`~vbayes.models.VAE`.

It minimises the reconstruction negative log-likelihood only (no prior, no KL), which is what the
lecture contrasts with the VAE: the codes of an AE need not fill a region a decoder can be sampled
from.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from vbayes.models.base import ImageAutoencoder


class AE(ImageAutoencoder):
    """An auto-encoder on images of shape ``image_shape``.

    Args are those of :class:`~vbayes.models.VAE` without ``beta`` (see
    :class:`~vbayes.models.base.ImageAutoencoder`): the encoder body is followed by a linear map
    to the code ``(B, L)``; the decoder gives Bernoulli logits or Gaussian means.
    """

    def __init__(
        self,
        arch: str = "mlp",
        image_shape: Sequence[int] = (1, 28, 28),
        latent: int = 2,
        hidden: int | Sequence[int] = 400,
        likelihood: str = "bernoulli",
        gaussian_std: float | None = None,
    ) -> None:
        super().__init__(arch, image_shape, latent, hidden, likelihood, gaussian_std)
        body, features, decoder = self.build_networks(arch, hidden)
        self.encoder = nn.Sequential(body, nn.Linear(features, latent))
        self.decoder = decoder

    def encode(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> codes ``(B, L)``."""
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> decoder output ``(B, C, H, W)``."""
        return self.decode(self.encode(x))

    def point_output(self, x: Tensor) -> Tensor:
        """``decode(encode(x))``: the AE is deterministic, so its one reconstruction."""
        return self(x)

    def loss(self, x: Tensor) -> Tensor:
        """Mean :meth:`reconstruction_nll` over the batch (nats per example)."""
        return self.reconstruction_nll(x).mean()
