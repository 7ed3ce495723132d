"""``bbb``, ``flipout``, ``lrt``: mean-field variational weights trained on the ELBO.

The network is built from the Bayesian layers of :mod:`vbayes.layers` (``LinearReparam`` for
Bayes by Backprop, ``LinearFlipout``, ``LinearLRT``); the three methods differ only in the
gradient estimator. Loss per minibatch: mean negative log-likelihood + KL / N (the KL of all
layers scaled by the dataset size N, so that the sum over an epoch is the negative ELBO / N).
The noise is ``heteroscedastic`` (a second network output) or ``homoscedastic`` (one learned
point-estimate log sigma). Prediction: ``n_samples`` forward passes, each a fresh weight draw.

Known limitation, kept visible rather than tuned away: mean-field Gaussians on shallow networks
under-estimate in-between uncertainty (Foong et al. 2019), so their gap ratio on ``toy-gap``
is expected to be much smaller than HMC's.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from torch import Tensor, nn

from vbayes.errors import VBayesError
from vbayes.layers import LinearFlipout, LinearLRT, LinearReparam, kl_divergence
from vbayes.methods.base import (
    GaussianHead,
    Method,
    Prediction,
    mlp,
    regression_or_classification_loss,
    stack_predictions,
    train_loop,
)
from vbayes.priors import Normal


class VariationalMethod(Method):
    """Shared implementation; subclasses set ``layer``.

    Options: ``prior_std`` (None: 1.0 for regression, 3.0 for classification) and
    ``prior_scaling`` (``fan_in``: each layer's prior is ``priors.Normal(0, prior_std /
    sqrt(fan_in))``, as for ``hmc`` and ``sgld``, so that the prior over functions stays O(1)
    as the width grows; ``none``: ``Normal(0, prior_std)``),
    ``posterior_std_init`` (initial posterior std, 1e-2), ``n_samples`` (prediction draws, 100),
    ``lr``, ``batch_size``, ``steps``, ``activation``, ``noise``, ``kl_weight`` (1.0; multiplies
    KL / N, 1 is the true ELBO), ``kl_warmup`` (fraction of the training steps over which the
    KL weight rises linearly from 0 to ``kl_weight``, 0.3; an optimisation aid against the
    under-fitting optimum, the final objective is the ELBO).
    """

    layer: ClassVar[type[nn.Module]] = LinearReparam
    defaults: ClassVar[dict[str, Any]] = {
        "prior_std": None,
        "prior_scaling": "fan_in",
        "posterior_std_init": 1e-2,
        "n_samples": 100,
        "lr": 1e-2,
        "batch_size": 32,
        "steps": 4000,
        "activation": "relu",
        "noise": "heteroscedastic",
        "kl_weight": 1.0,
        "kl_warmup": 0.3,
    }

    def _fit(self, x: Tensor, y: Tensor) -> None:
        opt = self.options
        prior_std = self.prior_std()
        self.info["prior_std"] = prior_std
        if opt["prior_scaling"] not in ("fan_in", "none"):
            raise VBayesError(f"{self.name}: prior_scaling must be fan_in or none, got {opt['prior_scaling']!r}")
        std0 = float(opt["posterior_std_init"])
        layer = type(self).layer

        def linear(a: int, b: int) -> nn.Module:
            scale = prior_std / (math.sqrt(a) if opt["prior_scaling"] == "fan_in" else 1.0)
            return layer(a, b, prior=Normal(0.0, scale), posterior_std_init=std0)

        self.head = GaussianHead(opt["noise"]) if self.task == "regression" else None
        self.model = mlp(x.shape[1], self.hidden, self.out_features, activation=opt["activation"], linear=linear)
        params = list(self.model.parameters()) + (list(self.head.parameters()) if self.head else [])
        n = x.shape[0]
        kl_scale = float(opt["kl_weight"]) / n
        epochs = self.resolve_epochs(n, opt["batch_size"], opt["steps"])
        total_steps = epochs * math.ceil(n / min(n, int(opt["batch_size"])))
        warmup_steps = float(opt["kl_warmup"]) * total_steps
        step = [0]

        def loss_fn(xb: Tensor, yb: Tensor) -> Tensor:
            step[0] += 1
            anneal = min(1.0, step[0] / warmup_steps) if warmup_steps > 0 else 1.0
            nll = regression_or_classification_loss(self.model(xb), yb, self.task, self.head).mean()
            return nll + anneal * kl_scale * kl_divergence(self.model)

        train_loop(
            params,
            loss_fn,
            x,
            y,
            epochs=epochs,
            batch_size=opt["batch_size"],
            lr=opt["lr"],
            info=self.info,
            modules=[self.model],
        )
        self.info["kl"] = float(kl_divergence(self.model).detach())

    def _predict(self, x: Tensor) -> Prediction:
        self.model.eval()
        outs = [self.model(x) for _ in range(int(self.options["n_samples"]))]
        return stack_predictions(outs, self.task, self.head, self.info)


class BBBMethod(VariationalMethod):
    """Bayes by Backprop: one weight sample per minibatch (``LinearReparam``)."""

    name: ClassVar[str] = "bbb"
    layer: ClassVar[type[nn.Module]] = LinearReparam


class FlipoutMethod(VariationalMethod):
    """Flipout: pseudo-independent weight perturbations per example (``LinearFlipout``)."""

    name: ClassVar[str] = "flipout"
    layer: ClassVar[type[nn.Module]] = LinearFlipout


class LRTMethod(VariationalMethod):
    """Local reparameterization: sampled pre-activations (``LinearLRT``)."""

    name: ClassVar[str] = "lrt"
    layer: ClassVar[type[nn.Module]] = LinearLRT
