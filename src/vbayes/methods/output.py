"""``output``: variational output only, a deterministic network with a Gaussian (or softmax) head.

The network predicts ``mu(x)`` and ``sigma(x)`` and is trained on the Gaussian negative
log-likelihood (cross-entropy for classification). There is a single set of weights, so the
prediction has S = 1 sample and no epistemic part: all its uncertainty is aleatoric.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
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
        opt = self.options
        self.head = GaussianHead(opt["noise"]) if self.task == "regression" else None
        self.model = mlp(x.shape[1], self.hidden, self.out_features, activation=opt["activation"])
        params = list(self.model.parameters()) + (list(self.head.parameters()) if self.head else [])

        def loss_fn(xb: Tensor, yb: Tensor) -> Tensor:
            return regression_or_classification_loss(self.model(xb), yb, self.task, self.head).mean()

        train_loop(
            params,
            loss_fn,
            x,
            y,
            epochs=self.resolve_epochs(x.shape[0], opt["batch_size"], opt["steps"]),
            batch_size=opt["batch_size"],
            lr=opt["lr"],
            weight_decay=opt["weight_decay"],
            info=self.info,
            modules=[self.model],
        )

    def _predict(self, x: Tensor) -> Prediction:
        self.model.eval()
        return stack_predictions([self.model(x)], self.task, self.head, self.info)
