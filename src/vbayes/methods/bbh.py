"""``bbh``: Bayes by Hypernet (Pawlowski, Brock, Lee, Rajchl & Glocker 2017, arXiv 1711.01297).

Every layer of the MLP is a :class:`vbayes.layers.hypernet.LinearHypernet`: a small hypernetwork
maps noise ``eps ~ N(0, I_k)`` to the layer's weights and bias, an implicit q with no density. The
loss per minibatch is that of the other variational methods,

    mean NLL over ``train_samples`` weight draws (each shared by the batch) + KL_nn / N,

with the KL to the prior ``N(0, prior_std^2 / fan_in)`` of every method replaced by a
nearest-neighbour estimate KL_nn from ``kl_samples`` = 5 weight draws per layer and step
(:mod:`vbayes.layers.hypernet_kl`). Two choices, each an option:

* ``kl_estimator``: ``"nn"``, the paper's two-sample estimator (5 prior draws too), or
  ``"entropy"`` (the default), the prior's exact log density at the weight draws minus the
  Kozachenko-Leonenko nearest-neighbour entropy of q. The paper's has a gradient of no finite
  variance in q's mean (the prior draws do not move with q) and, at 5 draws, grows only like the
  log of q's distance from the prior where the KL grows quadratically.
* ``kl_mode``: ``"kernel"`` (the default), one estimate over each layer's whole kernel and
  bias, or ``"weight"`` (the paper's default), a 1-D estimate per weight, summed: the sum of
  the marginal KLs, blind to the dependence between weights, which lets q correlate its weights
  for free (on Bayesian linear regression its predictive sd comes out 1.1-2.8x the exact one;
  ``"kernel"``, within 10%).

Training (Adam, cosine schedule), noise models, ``kl_weight``/``kl_warmup`` and the prediction
from ``n_samples`` weight draws are those of :class:`~vbayes.methods.variational.VariationalMethod`.
The paper's optional prior-contrastive discriminator is not implemented.

What ``info`` reports, named for what it is:

* ``kl_nn``: the mean of 100 KL_nn estimates of the fitted q (nats), ``kl_nn_sd`` the sd of one
  estimate. It is not the KL: with ``noise_dim`` < the number of weights q is degenerate and its
  true KL is infinite; ``"weight"`` mode estimates the sum of the marginal KLs.
* ``nn_elbo`` (``nn_elbo_se``): ``mean_n E_q log p(y_n | x_n, w) - kl_nn / N`` per point: the
  ELBO with the KL estimate in place of the KL, hence not a bound and not comparable with the
  ``elbo`` of the other methods (which ``bbh`` therefore does not report).
* ``weight_spread``: mean over all generated parameters of their std across 256 draws, over the
  prior std of their layer (1 = as wide as the prior; near 0 = q collapsed onto a point);
  ``weight_spread_init`` the same at initialisation; ``weight_spread_layers`` per layer
  ``{"spread", "prior_std", "ratio"}``.

Measured defaults, one 1x50 network, seed 0 (toy-gap RMSE / NLL; Boston split 0 NLL):
``("weight", "nn")`` (the paper's) 0.36 / 1.28, 3.28; ``("weight", "entropy")`` 0.36 / 0.68,
2.79; ``("kernel", "nn")`` 0.51 / 1.21, 2.29; ``("kernel", "entropy")`` 0.31 / 0.47, 2.29
(``lrt``: 0.35 / 0.88, 2.40). Optimiser (the paper's RMSProp lr 1e-4 with KL annealing is for
MNIST): Adam with the cosine schedule of the other variational methods over their 4000
steps, but from lr 1e-3 to 1e-4: at ``bbb``'s 1e-2 and at 3e-3 the generated weights spread to
several times the prior std and the fit diverges with either estimator (toy-gap RMSE 197-521,
Boston 297-534). 4 weight draws per step (``train_samples``); the paper's 5 KL draws, noise_dim
8, one hypernet layer of 64 units.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from vbayes.errors import VBayesError
from vbayes.layers import kl_divergence
from vbayes.layers.hypernet import KL_ESTIMATORS, LinearHypernet
from vbayes.layers.hypernet_kl import KL_MODES
from vbayes.methods.variational import VariationalMethod

KL_REPEATS = 100
"""KL_nn estimates averaged for ``info["kl_nn"]`` and ``info["nn_elbo"]``."""
SPREAD_DRAWS = 256


def _positive_int(value: Any, owner: str, what: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise VBayesError(f"{owner}: {what} must be an int >= {least}, got {value!r}")
    return value


class BBHMethod(VariationalMethod):
    """Bayes by Hypernet: a hypernetwork per layer, nearest-neighbour KL estimate (see the module).

    Options (besides those of :class:`~vbayes.methods.variational.VariationalMethod`):
        noise_dim: k, the hypernets' noise dimension (8).
        hyper_hidden: the hypernets' hidden widths, leaky-ReLU(0.1) (``(64,)``; ``()`` is linear).
        kl_samples: S >= 2 weight draws per KL estimate (5, as the paper).
        kl_mode: ``"kernel"`` (one estimate over each layer's whole kernel and bias) or
            ``"weight"`` (1-D estimate per weight, summed; the paper's default).
        kl_estimator: ``"entropy"`` (exact prior log density, nearest-neighbour entropy) or
            ``"nn"`` (the paper's two-sample estimator).
        posterior_std_init: initial mean std of the generated weights (absolute units).
    """

    name: ClassVar[str] = "bbh"
    estimator: ClassVar[str] = "hypernet"
    defaults: ClassVar[dict[str, Any]] = {
        **VariationalMethod.defaults,
        "noise_dim": 8,
        "hyper_hidden": (64,),
        "kl_samples": 5,
        "kl_mode": "kernel",
        "kl_estimator": "entropy",
        "posterior_std_init": 0.05,
        "train_samples": 4,
        "lr": 1e-3,
        "final_lr": 1e-4,
    }

    def _layer_options(self) -> dict[str, Any]:
        """The ``LinearHypernet`` keyword arguments of the options, checked (one-line VBayesError)."""
        opt = self.options
        hidden = opt["hyper_hidden"]
        hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        for h in hidden:
            _positive_int(h, self.name, "every hyper_hidden width")
        if opt["kl_estimator"] not in KL_ESTIMATORS:
            raise VBayesError(f"{self.name}: kl_estimator must be one of {', '.join(KL_ESTIMATORS)}, "
                              f"got {opt['kl_estimator']!r}")
        if opt["kl_mode"] not in KL_MODES:
            raise VBayesError(f"{self.name}: kl_mode must be one of {', '.join(KL_MODES)}, got {opt['kl_mode']!r}")
        return {"noise_dim": _positive_int(opt["noise_dim"], self.name, "noise_dim"), "hidden": hidden,
                "kl_samples": _positive_int(opt["kl_samples"], self.name, "kl_samples", least=2),
                "kl_mode": opt["kl_mode"], "kl_estimator": opt["kl_estimator"]}

    def _layer_class(self) -> Callable[..., nn.Module]:  # type: ignore[override]
        return functools.partial(LinearHypernet, **self._layer_options())

    def _layers(self) -> list[LinearHypernet]:
        return [m for m in self.model.modules() if isinstance(m, LinearHypernet)]

    def _build(self, in_features: int) -> None:
        super()._build(in_features)
        self.info["weight_spread_init"] = self.weight_spread()["ratio"]

    def _fit(self, x: Tensor, y: Tensor) -> None:
        self._layer_options()  # fail before training
        super()._fit(x, y)
        self.info.pop("kl", None)  # one random estimate: replaced by kl_nn below
        if "elbo" in self.info:
            self.info["nn_elbo"], self.info["nn_elbo_se"] = self.info.pop("elbo"), self.info.pop("elbo_se")
        if "error" not in self.info:
            kl = self.kl_estimates(KL_REPEATS)
            self.info["kl_nn"], self.info["kl_nn_sd"] = float(kl.mean()), float(kl.std())
        spread = self.weight_spread()
        self.info["weight_spread"], self.info["weight_spread_layers"] = spread["ratio"], spread["layers"]

    @torch.no_grad()
    def kl_estimates(self, repeats: int) -> Tensor:
        """``repeats`` independent KL_nn estimates of the whole network ``(repeats,)`` float64, nats."""
        return torch.tensor([float(kl_divergence(self.model)) for _ in range(repeats)], dtype=torch.float64)

    @torch.no_grad()
    def weight_spread(self, draws: int = SPREAD_DRAWS) -> dict[str, Any]:
        """The generated weights' spread against the prior: per layer the mean over its parameters
        of their std across ``draws`` draws (``spread``), the layer's prior std and their ratio;
        ``ratio`` overall, the layers' ratios weighted by their numbers of parameters."""
        layers, total, count = [], 0.0, 0
        for layer in self._layers():
            spread = layer.weight_spread(draws)
            prior_std = float(layer.prior.stddev)
            layers.append({"spread": spread, "prior_std": prior_std, "ratio": spread / prior_std})
            total += spread / prior_std * layer.n_params
            count += layer.n_params
        return {"ratio": total / max(count, 1), "layers": layers}

    @torch.no_grad()
    def elbo(self, x: Tensor, y: Tensor, draws: int = 1000) -> tuple[float, float]:
        """``mean_n E_q log p(y_n | x_n, w) - kl_nn / N`` per point on ``x`` ``(N, D)``, ``y``
        ``(N,)``, the expectation from ``draws`` weight draws, kl_nn the mean of
        :data:`KL_REPEATS` estimates; returns ``(value, se of the expectation)``. Not a bound
        (see the module)."""
        if draws < 2:
            raise VBayesError(f"{self.name}: elbo_samples must be >= 2, got {draws}")
        self.model.eval()
        loglik = torch.cat([-self._nll(x, y, min(50, draws - s), repeat=False).double().mean(1)
                            for s in range(0, draws, 50)])  # (draws,)
        kl = float(self.kl_estimates(KL_REPEATS).mean()) / x.shape[0]
        return float(loglik.mean()) - kl, float(loglik.std() / math.sqrt(draws))
