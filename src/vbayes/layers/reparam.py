"""Bayes by Backprop (Blundell et al. 2015): one weight sample shared by the whole mini-batch.

Forward: w = mu + sigma * eps with eps ~ N(0, I) drawn once per call, then the deterministic
operation with w. Cheapest per step, but every example of a batch sees the same weights, so
per-example gradients are correlated and the gradient variance does not fall with batch size.
"""

from __future__ import annotations

from torch import Tensor

from vbayes.layers._ops import Conv1dLayer, Conv2dLayer, ConvTranspose1dLayer, ConvTranspose2dLayer, LinearLayer
from vbayes.layers._variational import VariationalLayer

__all__ = ["LinearReparam", "Conv1dReparam", "Conv2dReparam", "ConvTranspose1dReparam", "ConvTranspose2dReparam"]


class _Reparam(VariationalLayer):
    estimator = "reparam"

    def _forward_sample(self, x: Tensor) -> Tensor:
        w, b = self._sample_params("weight")
        return self._op(x, w, b)


class LinearReparam(_Reparam, LinearLayer):
    """Bayesian ``nn.Linear`` (Bayes by Backprop). Input ``(*, in_features)`` -> ``(*, out_features)``."""


class Conv1dReparam(_Reparam, Conv1dLayer):
    """Bayesian ``nn.Conv1d`` (Bayes by Backprop). Input ``(N, C_in, L)`` -> ``(N, C_out, L_out)``."""


class Conv2dReparam(_Reparam, Conv2dLayer):
    """Bayesian ``nn.Conv2d`` (Bayes by Backprop). Input ``(N, C_in, H, W)`` -> ``(N, C_out, H', W')``."""


class ConvTranspose1dReparam(_Reparam, ConvTranspose1dLayer):
    """Bayesian ``nn.ConvTranspose1d`` (Bayes by Backprop)."""


class ConvTranspose2dReparam(_Reparam, ConvTranspose2dLayer):
    """Bayesian ``nn.ConvTranspose2d`` (Bayes by Backprop). Input ``(N, C_in, H, W)``."""
