"""What the AE, the VAE and the Bayesian AE share: the image shape, the code size, the pixel
likelihood, the networks of :mod:`vbayes.models.nets`, their ``hparams`` and the meaning of
:meth:`ImageAutoencoder.reconstruction_nll`.
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor, nn

from vbayes.models.likelihood import PixelLikelihood, check_images
from vbayes.models.nets import build_networks


class ImageAutoencoder(nn.Module):
    """Base of the auto-encoders on images of shape ``image_shape`` ``(C, H, W)``.

    Args (the leading arguments of :class:`~vbayes.models.AE`, :class:`~vbayes.models.VAE` and
    :class:`~vbayes.models.BayesianAE`):
        arch: ``"mlp"`` or ``"conv"`` (:func:`vbayes.models.nets.build_networks`).
        image_shape: ``(C, H, W)``.
        latent: code size ``L >= 1``.
        hidden: hidden width (an int, or a sequence of widths for the MLP).
        likelihood: ``"bernoulli"`` (decoder gives logits) or ``"gaussian"`` (means in [0, 1]
            through a sigmoid).
        gaussian_std: fixed Gaussian standard deviation, or ``None`` to learn it.

    A subclass sets ``self.encoder`` and ``self.decoder`` (see :meth:`build_networks`) and
    defines :meth:`point_output`, the decoder output of its point reconstruction.
    """

    def __init__(
        self,
        arch: str,
        image_shape: Sequence[int],
        latent: int,
        hidden: int | Sequence[int],
        likelihood: str,
        gaussian_std: float | None,
    ) -> None:
        super().__init__()
        if latent < 1:
            raise ValueError(f"{type(self).__name__}: latent must be >= 1, got {latent}")
        self.likelihood = PixelLikelihood(likelihood, gaussian_std)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent = int(latent)
        self.hparams: dict[str, Any] = {
            "arch": arch,
            "image_shape": list(self.image_shape),
            "latent": self.latent,
            "hidden": hidden if isinstance(hidden, int) else list(hidden),
            "likelihood": likelihood,
            "gaussian_std": gaussian_std,
        }

    def build_networks(self, arch: str, hidden: int | Sequence[int]) -> tuple[nn.Module, int, nn.Module]:
        """``(encoder_body, features, decoder)`` of ``arch``; a sigmoid ends the decoder of a
        Gaussian likelihood (means in [0, 1])."""
        body, features, decoder = build_networks(arch, self.image_shape, self.latent, hidden)
        if self.likelihood.kind == "gaussian":
            decoder = nn.Sequential(decoder, nn.Sigmoid())
        return body, features, decoder

    def check_images(self, x: Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is a batch ``(B, C, H, W)`` of this model's images."""
        check_images(x, self.image_shape, type(self).__name__)

    def decode(self, z: Tensor) -> Tensor:
        """Codes ``(B, L)`` -> decoder output ``(B, C, H, W)``: Bernoulli logits or Gaussian means."""
        return self.decoder(z)

    def decode_mean(self, z: Tensor) -> Tensor:
        """Codes ``(B, L)`` -> mean images ``(B, C, H, W)`` (for manifolds, blending, summaries)."""
        return self.likelihood.mean(self.decode(z))

    def point_output(self, x: Tensor) -> Tensor:
        """The decoder output ``(B, C, H, W)`` of the point reconstruction of ``x`` (no sampling)."""
        raise NotImplementedError

    def reconstruction_nll(self, x: Tensor) -> Tensor:
        """``-log p(x | point reconstruction)``: ``(B,)`` nats per example, summed over pixels
        under the model's :class:`~vbayes.models.PixelLikelihood`, nothing sampled.

        The point reconstruction is the one :meth:`reconstruct` returns the mean image of: the AE's
        ``decode(encode(x))``, the VAE's ``decode(mu(x))`` (the mean of q(z|x)), the Bayesian
        AE's decoding under the posterior-mean weights. The one-sample reconstruction term of an
        ELBO is another quantity (``VAE.loss_terms``, ``BayesianAE.sampled_reconstruction_nll``).
        """
        return self.likelihood.nll(self.point_output(x), x)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Mean images ``(B, C, H, W)`` of the point reconstruction (see :meth:`reconstruction_nll`)."""
        return self.likelihood.mean(self.point_output(x))
