"""Models: the VAE, the AE, the Bayesian auto-encoder, and the networks they share (``nets``: the
one MLP / conv builder)."""

from vbayes.models.ae import AE
from vbayes.models.bae import BayesianAE
from vbayes.models.base import ImageAutoencoder
from vbayes.models.likelihood import PixelLikelihood
from vbayes.models.nets import ARCHS, build_networks, conv_decoder, conv_encoder, mlp_decoder, mlp_encoder
from vbayes.models.vae import VAE, VAEOutput

__all__ = [
    "AE",
    "ARCHS",
    "BayesianAE",
    "ImageAutoencoder",
    "PixelLikelihood",
    "VAE",
    "VAEOutput",
    "build_networks",
    "conv_decoder",
    "conv_encoder",
    "mlp_decoder",
    "mlp_encoder",
]
