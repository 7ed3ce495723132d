"""Generative models: the VAE, the AE and the encoder/decoder networks they share."""

from vbayes.models.ae import AE
from vbayes.models.likelihood import PixelLikelihood
from vbayes.models.nets import ARCHS, build_networks, conv_decoder, conv_encoder, mlp_decoder, mlp_encoder
from vbayes.models.vae import VAE, VAEOutput

__all__ = [
    "AE",
    "ARCHS",
    "PixelLikelihood",
    "VAE",
    "VAEOutput",
    "build_networks",
    "conv_decoder",
    "conv_encoder",
    "mlp_decoder",
    "mlp_encoder",
]
