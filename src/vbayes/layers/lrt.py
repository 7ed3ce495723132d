"""Local reparameterization (Kingma et al. 2015): sample the pre-activations, not the weights.

For a Gaussian posterior each output is Gaussian given the input,

    y ~ N(op(x, mu, b_mu), op(x^2, sigma^2, sigma_b^2)),

so one normal draw per output element replaces the weight-sized draw, and every example (and,
for convolutions, every output position) gets independent noise. The marginal of each output
is exact; for convolutions the correlation between positions that share a weight is dropped.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vbayes.layers._ops import Conv1dLayer, Conv2dLayer, ConvTranspose1dLayer, ConvTranspose2dLayer, LinearLayer
from vbayes.layers._variational import VariationalLayer

__all__ = ["LinearLRT", "Conv1dLRT", "Conv2dLRT", "ConvTranspose1dLRT", "ConvTranspose2dLRT"]


class _LRT(VariationalLayer):
    estimator = "lrt"

    def _forward_sample(self, x: Tensor) -> Tensor:
        mean = self._op(x, self.weight_mu, self.bias_mu)
        var_w, var_b = self._sample_params("var")
        var = self._op(x * x, var_w, var_b)
        eps = torch.randn(mean.shape, generator=self.generator, dtype=mean.dtype, device=mean.device)
        if var_b is None:  # an all-zero input row would give var = 0 and an infinite sqrt gradient
            var = var.clamp_min(torch.finfo(var.dtype).tiny)
        return torch.addcmul(mean, var.sqrt(), eps)


class LinearLRT(_LRT, LinearLayer):
    """Bayesian ``nn.Linear`` with local reparameterization. Input ``(*, in)`` -> ``(*, out)``."""


class Conv1dLRT(_LRT, Conv1dLayer):
    """Bayesian ``nn.Conv1d`` with local reparameterization."""


class Conv2dLRT(_LRT, Conv2dLayer):
    """Bayesian ``nn.Conv2d`` with local reparameterization."""


class ConvTranspose1dLRT(_LRT, ConvTranspose1dLayer):
    """Bayesian ``nn.ConvTranspose1d`` with local reparameterization."""


class ConvTranspose2dLRT(_LRT, ConvTranspose2dLayer):
    """Bayesian ``nn.ConvTranspose2d`` with local reparameterization."""
