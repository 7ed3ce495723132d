"""The deterministic auto-encoder, with the same networks and likelihood as :class:`~vbayes.models.VAE`.

It minimises the reconstruction negative log-likelihood only (no prior, no KL), which is what the
lecture contrasts with the VAE: the codes of an AE need not fill a region a decoder can be sampled
from.
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor, nn

from vbayes.models.likelihood import PixelLikelihood
from vbayes.models.nets import build_networks


class AE(nn.Module):
    """An auto-encoder on images of shape ``image_shape``.

    Args are those of :class:`~vbayes.models.VAE` without ``beta``: the encoder body is followed
    by a linear map to the code ``(B, L)``; the decoder gives Bernoulli logits or Gaussian means.
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
        super().__init__()
        if latent < 1:
            raise ValueError(f"AE: latent must be >= 1, got {latent}")
        self.likelihood = PixelLikelihood(likelihood, gaussian_std)
        body, features, dec = build_networks(arch, image_shape, latent, hidden)
        if likelihood == "gaussian":
            dec = nn.Sequential(dec, nn.Sigmoid())
        self.encoder = nn.Sequential(body, nn.Linear(features, latent))
        self.decoder = dec
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent = latent
        self.hparams: dict[str, Any] = {
            "arch": arch,
            "image_shape": list(self.image_shape),
            "latent": latent,
            "hidden": hidden if isinstance(hidden, int) else list(hidden),
            "likelihood": likelihood,
            "gaussian_std": gaussian_std,
        }

    def encode(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> codes ``(B, L)``."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Codes ``(B, L)`` -> decoder output ``(B, C, H, W)`` (logits or means)."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> decoder output ``(B, C, H, W)``."""
        return self.decode(self.encode(x))

    def reconstruction_nll(self, x: Tensor) -> Tensor:
        """``-log p(x | decode(encode(x)))`` per example, ``(B,)`` nats."""
        return self.likelihood.nll(self(x), x)

    def loss(self, x: Tensor) -> Tensor:
        """Mean reconstruction NLL over the batch (nats per example)."""
        return self.reconstruction_nll(x).mean()

    def reconstruct(self, x: Tensor) -> Tensor:
        """Mean reconstructed images ``(B, C, H, W)``."""
        return self.likelihood.mean(self(x))

    def decode_mean(self, z: Tensor) -> Tensor:
        """Mean images for codes ``(B, L)`` -> ``(B, C, H, W)``."""
        return self.likelihood.mean(self.decode(z))
