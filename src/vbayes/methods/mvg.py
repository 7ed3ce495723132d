"""``mvg``: matrix-variate Gaussian weight posteriors (Louizos & Welling 2016), trained on the ELBO.

Each layer's weights have q(W) = MN(M, U, V) with diagonal row and column covariances
(:class:`vbayes.layers.LinearMVG`): ``in + out`` variance parameters per layer instead of the
mean field's ``in * out``, sampled by local reparameterization, with the closed-form KL to the
prior ``N(0, prior_std^2 / fan_in)`` of every method. The bias is a mean-field Gaussian. Training,
noise models, options and ``info["elbo"]`` are those of :class:`~vbayes.methods.variational.VariationalMethod`.

The paper's learned pseudo-data (inducing inputs and outputs that the layer is conditioned on)
are not implemented: this is the plain matrix-normal layer.

With a single output (``V`` is 1x1) the posterior of a linear model is mean-field with one
variance per input row, so on Bayesian linear regression it reaches the mean-field optimum.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from vbayes.layers.mvg import LinearMVG
from vbayes.methods.variational import VariationalMethod


class MVGMethod(VariationalMethod):
    """Matrix-variate Gaussian posteriors per layer (``LinearMVG``); options as ``lrt``."""

    name: ClassVar[str] = "mvg"
    estimator: ClassVar[str] = "mvg"
    noise_per_example: ClassVar[bool] = True
    independent_rows: ClassVar[bool] = True

    def _layer_class(self) -> type[nn.Module]:
        return LinearMVG
