"""Flipout (Wen et al. 2018): per-example decorrelated weight perturbations at ~2x the cost.

With one shared perturbation dW = sigma * eps, example n uses W_n = mu + dW * (r_n s_n^T) for
random sign vectors s_n (input features / channels) and r_n (output features / channels), so

    y_n = op(x_n, mu, b_mu) + r_n * op(x_n * s_n, dW, db).

Each W_n has exactly the posterior distribution, and different examples' perturbations are
uncorrelated, so the gradient variance falls ~1/batch. The signs come from the bits of one
integer draw (64 signs per random number), never from per-weight Bernoulli draws.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vbayes.layers._ops import (Conv1dLayer, Conv2dLayer, ConvTranspose1dLayer, ConvTranspose2dLayer, LinearLayer,
                                sign_vectors)
from vbayes.layers._variational import VariationalLayer

__all__ = ["LinearFlipout", "Conv1dFlipout", "Conv2dFlipout", "ConvTranspose1dFlipout", "ConvTranspose2dFlipout"]


class _Flipout(VariationalLayer):
    estimator = "flipout"

    def _forward_sample(self, x: Tensor) -> Tensor:
        mean = self._op(x, self.weight_mu, self.bias_mu)
        dw, db = self._sample_params("delta")
        s_in, s_out = sign_vectors(self, x)
        return torch.addcmul(mean, self._op(x * s_in, dw, db), s_out)


class LinearFlipout(_Flipout, LinearLayer):
    """Bayesian ``nn.Linear`` with Flipout. Input ``(*, in_features)`` -> ``(*, out_features)``."""


class Conv1dFlipout(_Flipout, Conv1dLayer):
    """Bayesian ``nn.Conv1d`` with Flipout (signs per example and channel)."""


class Conv2dFlipout(_Flipout, Conv2dLayer):
    """Bayesian ``nn.Conv2d`` with Flipout (signs per example and channel)."""


class ConvTranspose1dFlipout(_Flipout, ConvTranspose1dLayer):
    """Bayesian ``nn.ConvTranspose1d`` with Flipout (signs per example and channel)."""


class ConvTranspose2dFlipout(_Flipout, ConvTranspose2dLayer):
    """Bayesian ``nn.ConvTranspose2d`` with Flipout (signs per example and channel)."""
