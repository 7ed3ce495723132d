"""vbayes: variational Bayesian deep learning on PyTorch.

The public API is exactly what ``__all__`` lists.
"""

from __future__ import annotations

__version__ = "0.1.0"

from vbayes.layers.base import BayesianModule, kl_divergence

__all__ = [
    "__version__",
    "BayesianModule",
    "kl_divergence",
]
