"""``output``: variational output only, a deterministic network with a Gaussian (or softmax) head.

The network predicts ``mu(x)`` and ``sigma(x)`` and is trained on the Gaussian negative
log-likelihood (cross-entropy for classification). There is a single set of weights, so the
prediction has S = 1 sample and no epistemic part: all its uncertainty is aleatoric.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from vbayes.models.nets import mlp
from vbayes.methods.base import Method, Prediction, regression_or_classification_loss, resolve_batch_size, stack_predictions, train_loop
from vbayes.errors import VBayesError
from vbayes.methods.noise import NoiseModel


class OutputMethod(Method):
    """Heteroscedastic Gaussian head (or softmax) on a point-estimate MLP; S = 1.

    Options (defaults in ``defaults``): ``lr`` Adam learning rate (with ``final_lr``, cosine
    decay to it; None: constant), ``batch_size`` (None: full
    batch up to 1,000 points), ``steps`` (optimiser steps used when ``epochs`` is None),
    ``weight_decay`` (penalty ``(wd / 2) ||W||^2`` on the weight matrices), ``prior_std`` (None;
    when set, the penalty is the prior ``N(0, prior_std^2 / fan_in)`` of the Bayesian methods on
    every weight and bias instead, and the network is its MAP estimate), ``activation``,
    ``noise`` and ``noise_std`` (see :mod:`vbayes.methods.noise`).
    """

    name: ClassVar[str] = "output"
    defaults: ClassVar[dict[str, Any]] = {
        "lr": 3e-3,
        "batch_size": 32,
        "steps": 3000,
        "weight_decay": 1e-4,
        "prior_std": None,
        "activation": "relu",
        "noise": "heteroscedastic",
        "noise_std": None,
        "final_lr": None,
    }

    def _fit(self, x: Tensor, y: Tensor) -> None:
        self.model, self.head = train_point_network(
            self, x, y, dropout=0.0, weight_decay=float(self.options["weight_decay"]), info=self.info
        )

    def _predict(self, x: Tensor) -> Prediction:
        self.model.eval()
        return stack_predictions([self.model(x)], self.task, self.head, self.info)


def weight_penalty(model: nn.Module) -> Tensor:
    """``sum ||W||^2`` over the weight matrices of the ``nn.Linear`` layers (biases excluded)."""
    return sum((m.weight.pow(2).sum() for m in model.modules() if isinstance(m, nn.Linear)), torch.zeros(()))


def prior_penalty(model: nn.Module, prior_std: float, n: int, drop: float = 0.0, input_dropout: bool = False) -> Tensor:
    """The prior's negative log density per training point (nats, up to a constant): every weight
    and bias of a layer with ``fan_in`` inputs ``~ N(0, prior_std^2 / fan_in)``, the convention of
    all methods, so that minimising mean NLL + this is MAP estimation. With dropout probability
    ``drop`` each weight term is scaled by the keep probability of its layer's input (Gal &
    Ghahramani's KL with the prior precision ``fan_in / prior_std^2``): 0-dim tensor."""
    total = torch.zeros(())
    for i, layer in enumerate(m for m in model.modules() if isinstance(m, nn.Linear)):
        keep = 1.0 - drop if (i > 0 or input_dropout) else 1.0
        bias = layer.bias.pow(2).sum() if layer.bias is not None else 0.0
        total = total + 0.5 * layer.in_features / prior_std**2 * (keep * layer.weight.pow(2).sum() + bias)
    return total / n


def fgsm_inputs(nll: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor, eps: Tensor) -> Tensor:
    """Fast-gradient-sign adversarial inputs ``x + eps * sign(d nll / d x)`` (Goodfellow et al.
    2015), detached: ``x`` ``(B, D)``, ``eps`` ``(D,)`` or a scalar. To first order they increase
    ``nll(x, y)`` (the mean loss of the batch) by ``sum |eps * grad|``."""
    xa = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(nll(xa, y), xa)
    return (x + eps * grad.sign()).detach()


def train_point_network(
    method: Method,
    x: Tensor,
    y: Tensor,
    *,
    dropout: float,
    weight_decay: float,
    info: dict[str, Any],
    adversarial_eps: Tensor | None = None,
    input_dropout: bool = False,
) -> tuple[nn.Module, NoiseModel | None]:
    """Build and train one point-estimate network on ``x (N, D)``, ``y (N,)``; returns
    ``(model, head)`` (``head`` is the noise model for regression, None for classification).

    The MLP has ``dropout`` after each hidden layer (and on its inputs with ``input_dropout``).
    The loss per minibatch is the mean NLL + ``(weight_decay / 2) * sum ||W||^2`` over the weight
    matrices (biases are not penalised; the gradient of the penalty is ``weight_decay * W``, as
    with torch's ``weight_decay``), or, when the method's ``prior_std`` option is set, + the
    prior's :func:`prior_penalty` instead (MAP under the prior of the Bayesian methods); trained
    with Adam, reporting into ``info``. With
    ``adversarial_eps`` (``(D,)``) each batch also adds the NLL at its fast-gradient-sign
    perturbation (:func:`fgsm_inputs`). Shared by ``output``, ``dropout`` and each ``ensemble``
    member.
    """
    opt = method.options
    head = method.noise_model()
    model = mlp(x.shape[1], method.hidden, method.out_features, activation=opt["activation"], dropout=dropout,
                input_dropout=input_dropout)
    params = list(model.parameters()) + (list(head.parameters()) if head else [])

    def nll(xb: Tensor, yb: Tensor) -> Tensor:
        return regression_or_classification_loss(model(xb), yb, method.task, head).mean()

    prior_std = opt.get("prior_std")
    if prior_std is not None and not float(prior_std) > 0:
        raise VBayesError(f"{method.name}: prior_std must be > 0, got {prior_std}")

    def loss_fn(xb: Tensor, yb: Tensor, step: int) -> Tensor:
        loss = nll(xb, yb)
        if prior_std is not None:
            loss = loss + prior_penalty(model, float(prior_std), x.shape[0], dropout, input_dropout)
        elif weight_decay:
            loss = loss + 0.5 * weight_decay * weight_penalty(model)
        if adversarial_eps is not None:
            loss = loss + nll(fgsm_inputs(nll, xb, yb, adversarial_eps), yb)
        return loss

    batch_size = resolve_batch_size(opt["batch_size"], x.shape[0])
    train_loop(
        params,
        loss_fn,
        x,
        y,
        steps=method.resolve_steps(x.shape[0], batch_size, opt["steps"]),
        batch_size=batch_size,
        lr=opt["lr"],
        final_lr=opt["final_lr"],
        info=info,
        modules=[model],
    )
    return model, head
