"""``mvg``: matrix-variate Gaussian weight posteriors (Louizos & Welling 2016), trained on the ELBO.

Each layer's weights have q(W) = MN(M, U, V) with diagonal row and column covariances
(:class:`vbayes.layers.LinearMVG`): ``in + out`` variance parameters per layer instead of the
mean field's ``in * out``, sampled by local reparameterization, with the closed-form KL to the
prior ``N(0, prior_std^2 / fan_in)`` of every method. The bias is a mean-field Gaussian. Training,
noise models, options and ``info["elbo"]`` are those of :class:`~vbayes.methods.variational.VariationalMethod`.

Option ``pseudo_data`` (int >= 0, default 0: the plain matrix-normal layer): every layer's
weights are conditioned on that many learned pseudo-data points (the paper's yacht example used
5), see :mod:`vbayes.layers.mvg`. The KL term is then that of the unconditioned MN, as in the
paper's code, so ``info["elbo"]`` is the paper's surrogate objective, not a bound on the evidence;
the multiplicative noise the paper puts on the pseudo-data is not implemented.

With a single output (``V`` is 1x1) the posterior of a linear model is mean-field with one
variance per input row, so on Bayesian linear regression it reaches the mean-field optimum.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, ClassVar

from torch import nn

from vbayes.errors import VBayesError
from vbayes.layers.mvg import LinearMVG
from vbayes.methods.variational import VariationalMethod


class MVGMethod(VariationalMethod):
    """Matrix-variate Gaussian posteriors per layer (``LinearMVG``); options as ``lrt``, plus
    ``pseudo_data`` (see the module)."""

    name: ClassVar[str] = "mvg"
    estimator: ClassVar[str] = "mvg"
    noise_per_example: ClassVar[bool] = True
    independent_rows: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {**VariationalMethod.defaults, "pseudo_data": 0}

    def _pseudo_data(self) -> int:
        value = self.options["pseudo_data"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise VBayesError(f"{self.name}: pseudo_data must be an int >= 0, got {value!r}")
        return value

    def _layer_class(self) -> Callable[..., nn.Module]:  # type: ignore[override]
        pseudo = self._pseudo_data()
        return functools.partial(LinearMVG, pseudo_data=pseudo) if pseudo else LinearMVG
