"""``dropout``: Monte-Carlo dropout (Gal & Ghahramani 2016).

A network with dropout after every hidden layer is trained on the (heteroscedastic) Gaussian
negative log-likelihood plus an L2 penalty on the weight matrices; at prediction time dropout
stays on and ``n_samples`` stochastic forward passes form the predictive mixture.

The penalty follows the approximate-inference reading of dropout (Gal & Ghahramani 2016, their
appendix): with a prior length-scale ``l`` and keep probability ``1 - p``, the KL term per
training point is ``l^2 (1 - p) / (2 N) * sum ||W||^2`` over the weight matrices (biases are not
penalised, as in the reference code). The loss here is the NLL in nats per point, so this is the
coefficient itself; it corresponds to ``weight_decay = l^2 (1 - p) / N`` in the convention of
:func:`~vbayes.methods.output.train_point_network` (penalty ``(wd / 2) ||W||^2``). (The
reference's Keras code writes ``reg = l^2 (1 - p) / (2 N tau)`` on a mean-squared-error loss,
which lacks the 1/2 of the Gaussian NLL, so its effective penalty is half of the derivation's.)
Unless ``weight_decay`` is given explicitly.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from vbayes.errors import VBayesError
from vbayes.methods.base import Method, Prediction, stack_predictions
from vbayes.methods.output import train_point_network


class DropoutMethod(Method):
    """MC dropout; prediction has S = ``n_samples`` dropout masks.

    Options: ``p`` dropout probability, ``n_samples``, ``lr``, ``batch_size``, ``steps``,
    ``lengthscale`` (prior length-scale behind the default weight decay), ``weight_decay``
    (None: derived from ``lengthscale``), ``prior_std`` (None; when set, Gal's KL with the prior
    ``N(0, prior_std^2 / fan_in)`` of the Bayesian methods replaces both), ``input_dropout``
    (also drop inputs, False),
    ``activation``, ``noise``, ``noise_std``.
    """

    name: ClassVar[str] = "dropout"
    defaults: ClassVar[dict[str, Any]] = {
        "p": 0.05,
        "n_samples": 100,
        "lr": 3e-3,
        "batch_size": 32,
        "steps": 3000,
        "lengthscale": 1.0,
        "weight_decay": None,
        "prior_std": None,
        "activation": "relu",
        "noise": "heteroscedastic",
        "noise_std": None,
        "final_lr": None,
        "input_dropout": False,
    }

    def _fit(self, x: Tensor, y: Tensor) -> None:
        opt = self.options
        if not 0.0 < float(opt["p"]) < 1.0:
            raise VBayesError(f"dropout p must be in (0, 1), got {opt['p']}")
        n = x.shape[0]
        wd = opt["weight_decay"]
        if wd is None:
            wd = opt["lengthscale"] ** 2 * (1.0 - opt["p"]) / n  # penalty (wd / 2) ||W||^2
        self.info["weight_decay"] = float(wd)
        self.model, self.head = train_point_network(
            self, x, y, dropout=float(opt["p"]), weight_decay=float(wd), info=self.info,
            input_dropout=bool(opt["input_dropout"]),
        )

    def _predict(self, x: Tensor) -> Prediction:
        self.model.train()  # keep dropout on: each pass draws a new mask
        outs = [self.model(x) for _ in range(int(self.options["n_samples"]))]
        self.model.eval()
        return stack_predictions(outs, self.task, self.head, self.info)
