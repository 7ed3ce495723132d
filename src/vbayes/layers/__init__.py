"""Bayesian layers: Bayes by Backprop (``*Reparam``), Flipout (``*Flipout``) and local
reparameterization (``*LRT``) for linear, 1-d / 2-d convolutional and transposed-convolutional
operations. Every layer is an ``nn.Module`` returning a Tensor, with ``weight_mu``,
``weight_std``, ``bias_mu``, ``bias_std`` and ``kl_divergence()``.
"""

from vbayes.layers._variational import DEFAULT_POSTERIOR_STD, VariationalLayer
from vbayes.layers.base import BayesianModule, global_kl, kl_divergence, local_kl
from vbayes.layers.flipout import (Conv1dFlipout, Conv2dFlipout, ConvTranspose1dFlipout, ConvTranspose2dFlipout,
                                   LinearFlipout)
from vbayes.layers.lrt import Conv1dLRT, Conv2dLRT, ConvTranspose1dLRT, ConvTranspose2dLRT, LinearLRT
from vbayes.layers.hypernet import LinearHypernet
from vbayes.layers.mvg import LinearMVG
from vbayes.layers.reparam import (Conv1dReparam, Conv2dReparam, ConvTranspose1dReparam, ConvTranspose2dReparam,
                                   LinearReparam)
from vbayes.layers.svd import Conv2dSVD, LinearSVD

__all__ = [
    "BayesianModule", "VariationalLayer", "kl_divergence", "global_kl", "local_kl", "DEFAULT_POSTERIOR_STD",
    "LinearReparam", "LinearFlipout", "LinearLRT", "LinearMVG", "LinearSVD",
    "LinearHypernet",
    "Conv1dReparam", "Conv1dFlipout", "Conv1dLRT",
    "Conv2dReparam", "Conv2dFlipout", "Conv2dLRT", "Conv2dSVD",
    "ConvTranspose1dReparam", "ConvTranspose1dFlipout", "ConvTranspose1dLRT",
    "ConvTranspose2dReparam", "ConvTranspose2dFlipout", "ConvTranspose2dLRT",
]
