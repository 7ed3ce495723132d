"""``output``: variational output only, a deterministic network with a Gaussian (or softmax) head.

The network predicts ``mu(x)`` and ``sigma(x)`` and is trained on the Gaussian negative
log-likelihood (cross-entropy for classification). There is a single set of weights, so the
prediction has S = 1 sample and no epistemic part: all its uncertainty is aleatoric.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

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
        self.model, self.head = train_point_network(
            self, x, y, dropout=0.0, weight_decay=float(self.options["weight_decay"]), info=self.info
        )

    def _predict(self, x: Tensor) -> Prediction:
        self.model.eval()
        return stack_predictions([self.model(x)], self.task, self.head, self.info)


def train_point_network(
    method: Method,
    x: Tensor,
    y: Tensor,
    *,
    dropout: float,
    weight_decay: float,
    info: dict[str, Any],
    adversarial_eps: Tensor | None = None,
) -> tuple[nn.Module, GaussianHead | None]:
    """Build and train one point-estimate network on ``x (N, D)``, ``y (N,)``; returns
    ``(model, head)`` (``head`` is the Gaussian head for regression, None for classification).

    The MLP has ``dropout`` after each hidden layer; the loss is the mean NLL, trained with Adam
    and ``weight_decay``, reporting into ``info``. With ``adversarial_eps`` (``(D,)``) each batch
    also adds the NLL at its fast-gradient-sign perturbation. Shared by ``output``, ``dropout``
    and each ``ensemble`` member.
    """
    opt = method.options
    head = GaussianHead(opt["noise"]) if method.task == "regression" else None
    model = mlp(x.shape[1], method.hidden, method.out_features, activation=opt["activation"], dropout=dropout)
    params = list(model.parameters()) + (list(head.parameters()) if head else [])

    def nll(xb: Tensor, yb: Tensor) -> Tensor:
        return regression_or_classification_loss(model(xb), yb, method.task, head).mean()

    def loss_fn(xb: Tensor, yb: Tensor) -> Tensor:
        if adversarial_eps is None:
            return nll(xb, yb)
        xa = xb.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(nll(xa, yb), xa)
        x_adv = (xb + adversarial_eps * grad.sign()).detach()
        return nll(xb, yb) + nll(x_adv, yb)

    train_loop(
        params,
        loss_fn,
        x,
        y,
        epochs=method.resolve_epochs(x.shape[0], opt["batch_size"], opt["steps"]),
        batch_size=opt["batch_size"],
        lr=opt["lr"],
        weight_decay=weight_decay,
        info=info,
        modules=[model],
    )
    return model, head
