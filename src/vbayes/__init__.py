"""vbayes: variational Bayesian deep learning on PyTorch.

The public API is exactly what ``__all__`` lists.
"""

from __future__ import annotations

__version__ = "0.1.0"

from vbayes import _moved

_moved.install()  # old import paths (vbayes.priors, vbayes.heads, ...) stay valid for one release

from vbayes import layers, losses, models
from vbayes.layers import priors
from vbayes.layers.base import BayesianModule, global_kl, kl_divergence, local_kl
from vbayes.layers.convert import to_bayesian
from vbayes.layers.heads import GaussianHead, StochasticGaussian
from vbayes.layers.predict import predict
from vbayes.layers.sampling import frozen_sample, sampling_mode
from vbayes.losses import elbo_loss
from vbayes.models import AE, VAE, BayesianAE
from vbayes.train import Trainer, TrainConfig, TrainResult, StepContext, seed_everything
from vbayes.train.checkpoint import load_checkpoint

_LAZY = ("data", "methods", "metrics", "plots")


def __getattr__(name: str):  # noqa: ANN202 - module-level lazy import (PEP 562)
    """``vbayes.data``, ``vbayes.methods``, ``vbayes.metrics``, ``vbayes.plots``, imported on first use."""
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"vbayes.{name}")
    raise AttributeError(f"module 'vbayes' has no attribute {name!r}")


__all__ = [
    "__version__",
    "BayesianModule",
    "kl_divergence",
    "global_kl",
    "local_kl",
    "layers",
    "priors",
    "losses",
    "models",
    "data",
    "methods",
    "metrics",
    "plots",
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
