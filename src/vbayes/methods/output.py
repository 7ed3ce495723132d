"""``output``: variational output only, a deterministic network with a Gaussian (or softmax) head.

The network predicts ``mu(x)`` and ``sigma(x)`` and is trained on the Gaussian negative
log-likelihood (cross-entropy for classification). There is a single set of weights, so the
prediction has S = 1 sample and no epistemic part: all its uncertainty is aleatoric.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from vbayes.methods.base import (
    GaussianHead,
    Method,
    Prediction,
    mlp,
    regression_or_classification_loss,
    stack_predictions,
    train_loop,
)


class OutputMethod(Method):
    """Heteroscedastic Gaussian head (or softmax) on a point-estimate MLP; S = 1.

    Options (defaults in ``defaults``): ``lr`` Adam learning rate, ``batch_size``, ``steps``
    (optimiser steps used when ``epochs`` is None), ``weight_decay``, ``activation``, ``noise``
    (``heteroscedastic`` or ``homoscedastic``).
    """

    name: ClassVar[str] = "output"
    defaults: ClassVar[dict[str, Any]] = {
        "lr": 3e-3,
        "batch_size": 32,
        "steps": 3000,
        "weight_decay": 1e-4,
        "activation": "relu",
        "noise": "heteroscedastic",
    }

    def _fit(self, x: Tensor, y: Tensor) -> None:
        train_point_network(self, x, y, dropout=0.0, weight_decay=float(self.options["weight_decay"]))

    def _predict(self, x: Tensor) -> Prediction:
        self.model.eval()
        return stack_predictions([self.model(x)], self.task, self.head, self.info)


def train_point_network(method: Method, x: Tensor, y: Tensor, *, dropout: float, weight_decay: float) -> None:
    """Build ``method.head`` (Gaussian for regression) and ``method.model`` (an MLP with
    ``dropout`` after each hidden layer) and train them on the mean NLL of ``x (N, D)``, ``y (N,)``
    with Adam and ``weight_decay``; shared by ``output`` and ``dropout``."""
    opt = method.options
    method.head = GaussianHead(opt["noise"]) if method.task == "regression" else None
    method.model = mlp(x.shape[1], method.hidden, method.out_features, activation=opt["activation"], dropout=dropout)
    params = list(method.model.parameters()) + (list(method.head.parameters()) if method.head else [])

    def loss_fn(xb: Tensor, yb: Tensor) -> Tensor:
        return regression_or_classification_loss(method.model(xb), yb, method.task, method.head).mean()

    train_loop(
        params,
        loss_fn,
        x,
        y,
        epochs=method.resolve_epochs(x.shape[0], opt["batch_size"], opt["steps"]),
        batch_size=opt["batch_size"],
        lr=opt["lr"],
        weight_decay=weight_decay,
        info=method.info,
        modules=[method.model],
    )
