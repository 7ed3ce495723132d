"""The shared machinery of every Bayesian module.

A :class:`BayesianModule` is any ``nn.Module`` that contributes a KL term to the ELBO:
Bayesian layers (KL of the weight posterior to its prior) and stochastic hidden units
(KL of q(z|x) to p(z), computed in the last forward pass). ``vbayes.kl_divergence(model)``
sums :meth:`BayesianModule.kl_divergence` over every such module of a model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BayesianModule(nn.Module):
    """Base class of modules whose ``kl_divergence()`` enters the ELBO.

    ``sampling`` is ``"sample"`` (draw noise in every forward, in train and eval mode alike) or
    ``"mean"`` (use the posterior mean); :func:`vbayes.sampling_mode` switches a whole model.
    Subclasses that draw noise honour it.
    """

    sampling: str = "sample"

    def kl_divergence(self) -> Tensor:
        """Scalar KL term of this module, in nats (summed over its weights or units)."""
        raise NotImplementedError


def kl_divergence(model: nn.Module) -> Tensor:
    """Sum of ``kl_divergence()`` over every :class:`BayesianModule` in ``model`` (nats).

    Returns a scalar tensor (0 when the model has no Bayesian module). Nested Bayesian modules
    are counted once each: a BayesianModule's own children are not visited twice.
    """
    total: Tensor | None = None
    for module in model.modules():
        if isinstance(module, BayesianModule):
            term = module.kl_divergence()
            total = term if total is None else total + term
    if total is None:
        param = next(model.parameters(), None)
        return torch.zeros((), device=param.device if param is not None else None)
    return total
