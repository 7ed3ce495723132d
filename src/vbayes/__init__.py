"""vbayes: variational Bayesian deep learning on PyTorch.

The public API is exactly what ``__all__`` lists.
"""

from __future__ import annotations

__version__ = "0.1.0"

from vbayes.layers.base import BayesianModule, global_kl, kl_divergence, local_kl
from vbayes import layers, priors
from vbayes.convert import to_bayesian
from vbayes.elbo import elbo_loss
from vbayes.predict import predict
from vbayes.sampling import frozen_sample, sampling_mode
from vbayes.heads import GaussianHead, StochasticGaussian
from vbayes.models import AE, VAE
from vbayes.models.bae import BayesianAE
from vbayes.train import Trainer, TrainConfig, TrainResult, StepContext, seed_everything
from vbayes.checkpoint import load_checkpoint

__all__ = [
    "__version__",
    "BayesianModule",
    "kl_divergence",
    "global_kl",
    "local_kl",
    "layers",
    "priors",
    "to_bayesian",
    "elbo_loss",
    "predict",
    "sampling_mode",
    "frozen_sample",
    "GaussianHead",
    "StochasticGaussian",
    "VAE",
    "AE",
    "BayesianAE",
    "Trainer",
    "TrainConfig",
    "TrainResult",
    "StepContext",
    "seed_everything",
    "load_checkpoint",
]
