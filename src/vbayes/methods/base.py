"""The shared interface of every inference method, plus the pieces the NN methods reuse.

A :class:`Method` is built with ``(task, n_classes, hidden, epochs, seed, **options)``, fitted
with ``fit(x, y)`` and queried with ``predict(x)``, which returns a
:class:`~vbayes.predictive.RegressionPrediction` (regression) or a
:class:`~vbayes.predictive.ClassificationPrediction` (classification).

Seeds: ``fit`` and ``predict`` each run inside a forked torch RNG seeded from ``seed``, so the
same seed gives bit-identical fits and predictions, and the caller's global RNG is untouched.

NaN losses: the training loop stops at the first non-finite loss and writes a one-line message
to ``method.info["error"]``; ``fit`` returns normally so that a comparison of several methods
can go on (predictions of a diverged method may then be non-finite).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Callable, ClassVar, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vbayes.errors import VBayesError
from vbayes.predictive import ClassificationPrediction, RegressionPrediction

TASKS = ("regression", "classification")
MIN_SIGMA = 1e-3  # floor on the predicted noise std, in standardised target units
PRIOR_STD = {"regression": 1.0, "classification": 3.0}
"""Default weight-prior scale (before the 1/sqrt(fan_in) scaling) of the Bayesian methods: with
standardised targets a function prior of scale O(1) fits regression; softmax logits need larger
values to express confident decision boundaries (with 1.0, HMC on two moons reaches only 90%
accuracy: the prior forces nearly linear boundaries; with 3.0, 97-98%)."""

Prediction = RegressionPrediction | ClassificationPrediction


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body with the CPU torch RNG forked and seeded with ``seed`` (restored after)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def activation_module(name: str) -> nn.Module:
    """``nn.Module`` for an activation name: ``relu``, ``tanh``, ``gelu`` or ``elu``."""
    table: dict[str, Callable[[], nn.Module]] = {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
        "elu": nn.ELU,
    }
    if name not in table:
        raise VBayesError(f"unknown activation {name!r}; choose one of: {', '.join(table)}")
    return table[name]()


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    *,
    activation: str = "relu",
    dropout: float = 0.0,
    linear: Callable[[int, int], nn.Module] = nn.Linear,
) -> nn.Sequential:
    """A multi-layer perceptron ``in -> hidden... -> out`` built from ``linear(fan_in, fan_out)``.

    With ``dropout > 0`` an ``nn.Dropout`` follows every hidden activation (MC dropout keeps it
    active at prediction time). Input ``(B, in_features)``, output ``(B, out_features)``.
    """
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers.append(linear(width, h))
        layers.append(activation_module(activation))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(linear(width, out_features))
    return nn.Sequential(*layers)


def gaussian_nll(mu: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
    """Per-point Gaussian negative log-likelihood in nats, shapes broadcast, e.g. ``(B,)``."""
    return 0.5 * math.log(2 * math.pi) + torch.log(sigma) + 0.5 * ((y - mu) / sigma) ** 2


class GaussianHead(nn.Module):
    """Turns raw network outputs into a Gaussian ``(mu, sigma)``.

    ``heteroscedastic``: the network has 2 outputs, ``sigma = softplus(raw) + MIN_SIGMA``.
    ``homoscedastic``: 1 output and one learned ``log_sigma`` shared by all inputs.
    """

    def __init__(self, noise: str = "heteroscedastic", init_sigma: float = 0.5) -> None:
        super().__init__()
        if noise not in ("heteroscedastic", "homoscedastic"):
            raise VBayesError(f"unknown noise {noise!r}; choose heteroscedastic or homoscedastic")
        self.noise = noise
        self.log_sigma = nn.Parameter(torch.tensor(math.log(init_sigma)))
        if noise == "heteroscedastic":
            self.log_sigma.requires_grad_(False)

    @property
    def n_outputs(self) -> int:
        """Width of the network output this head expects."""
        return 2 if self.noise == "heteroscedastic" else 1

    def forward(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """``out`` ``(..., n_outputs)`` -> ``(mu, sigma)`` each ``(...)``."""
        mu = out[..., 0]
        if self.noise == "heteroscedastic":
            sigma = F.softplus(out[..., 1]) + MIN_SIGMA
        else:
            sigma = (self.log_sigma.exp() + MIN_SIGMA).expand_as(mu)
        return mu, sigma


def train_loop(
    params: Sequence[nn.Parameter] | Iterator[nn.Parameter],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    info: dict[str, Any],
    weight_decay: float = 0.0,
    generator: torch.Generator | None = None,
    modules: Sequence[nn.Module] = (),
) -> bool:
    """Adam on ``loss_fn(x_batch, y_batch)`` over shuffled minibatches; returns False on NaN.

    ``x`` ``(N, D)``, ``y`` ``(N,)``. The first non-finite loss stops training and sets
    ``info["error"]``. ``modules`` are put in train mode first. Records ``info["final_loss"]``
    (mean loss of the last epoch) and ``info["epochs"]``.
    """
    for module in modules:
        module.train()
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    n = x.shape[0]
    batch_size = min(batch_size, n)
    info["epochs"] = epochs
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            loss = loss_fn(x[idx], y[idx])
            if not torch.isfinite(loss):
                info["error"] = f"training diverged: non-finite loss at epoch {epoch + 1}"
                return False
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        info["final_loss"] = total / n
    return True


def epochs_for_steps(n: int, batch_size: int, steps: int, min_epochs: int = 1) -> int:
    """Number of epochs giving about ``steps`` optimiser steps on ``n`` points."""
    per_epoch = math.ceil(n / min(batch_size, n))
    return max(min_epochs, math.ceil(steps / per_epoch))


class Method(ABC):
    """Base class of every inference method.

    Args:
        task: ``"regression"`` (targets ``(N,)`` float, already standardised) or
            ``"classification"`` (targets ``(N,)`` int64 in ``[0, n_classes)``).
        n_classes: number of classes (classification); inferred as ``max(y) + 1`` when None.
        hidden: hidden layer widths, e.g. ``(50,)``.
        epochs: passes over the training data; None picks the method's default (see ``defaults``).
        seed: seed of initialisation, minibatch order and prediction sampling.
        **options: method-specific options; the valid ones and their defaults are the class's
            ``defaults`` dict. An unknown option raises :class:`VBayesError`.

    After ``fit``, ``info`` holds diagnostics (``"error"`` if training diverged).
    """

    name: ClassVar[str] = "method"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        task: str = "regression",
        n_classes: int | None = None,
        hidden: Sequence[int] = (50,),
        epochs: int | None = None,
        seed: int = 0,
        **options: Any,
    ) -> None:
        if task not in TASKS:
            raise VBayesError(f"unknown task {task!r}; choose regression or classification")
        if n_classes is not None and (task != "classification" or int(n_classes) < 2):
            raise VBayesError("n_classes must be >= 2 and is only for classification")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise VBayesError(f"hidden widths must be >= 1, got {hidden}")
        if epochs is not None and int(epochs) < 1:
            raise VBayesError(f"epochs must be >= 1, got {epochs}")
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise VBayesError(f"unknown option(s) {', '.join(unknown)} for method {self.name!r}; valid: {valid}")
        self.task = task
        self.n_classes = None if n_classes is None else int(n_classes)
        self.hidden = hidden
        self.epochs = None if epochs is None else int(epochs)
        self.seed = int(seed)
        self.options: dict[str, Any] = {**self.defaults, **options}
        self.info: dict[str, Any] = {}
        self._fitted = False
        self._in_features: int | None = None

    # -- public API -------------------------------------------------------------------------
    def fit(self, x_train: Tensor, y_train: Tensor) -> "Method":
        """Fit on ``x_train`` ``(N, D)`` float32 and ``y_train`` ``(N,)``; returns ``self``."""
        x, y = self._check_xy(x_train, y_train)
        self.info = {"method": self.name}
        self._in_features = x.shape[1]
        with seeded(self.seed):
            self._fit(x, y)
        self._fitted = True
        return self

    @torch.no_grad()
    def predict(self, x: Tensor) -> Prediction:
        """Predictive at ``x`` ``(M, D)``: ``mu, sigma`` ``(S, M)`` or ``probs`` ``(S, M, C)``."""
        if not self._fitted:
            raise VBayesError(f"method {self.name!r} must be fitted before predict")
        x = torch.as_tensor(x)
        if x.ndim != 2 or x.shape[1] != self._in_features:
            raise VBayesError(f"predict expects inputs of shape (M, {self._in_features}), got {tuple(x.shape)}")
        with seeded(self.seed + 104729):
            pred = self._predict(x.to(torch.float32))
        pred.info = dict(self.info)
        return pred

    # -- for subclasses ---------------------------------------------------------------------
    @abstractmethod
    def _fit(self, x: Tensor, y: Tensor) -> None:
        """Train on checked inputs; runs inside ``seeded(self.seed)``."""

    @abstractmethod
    def _predict(self, x: Tensor) -> Prediction:
        """Predict on checked inputs; runs inside ``seeded`` and ``no_grad``."""

    @property
    def out_features(self) -> int:
        """Network output width: 2 (heteroscedastic), 1 (homoscedastic) or ``n_classes``."""
        if self.task == "classification":
            assert self.n_classes is not None
            return self.n_classes
        return 2 if self.options.get("noise", "heteroscedastic") == "heteroscedastic" else 1

    def prior_std(self) -> float:
        """The ``prior_std`` option, or the task's default :data:`PRIOR_STD` when it is None."""
        value = self.options.get("prior_std")
        value = PRIOR_STD[self.task] if value is None else float(value)
        if not value > 0:
            raise VBayesError(f"{self.name}: prior_std must be > 0, got {value}")
        return value

    def resolve_epochs(self, n: int, batch_size: int, steps: int, min_epochs: int = 1) -> int:
        """``self.epochs`` if given, else enough epochs for about ``steps`` optimiser steps."""
        if self.epochs is not None:
            return self.epochs
        return epochs_for_steps(n, batch_size, steps, min_epochs)

    def _check_xy(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.as_tensor(x)
        y = torch.as_tensor(y)
        if x.ndim != 2:
            raise VBayesError(f"x_train must have shape (N, D), got {tuple(x.shape)}")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise VBayesError(f"y_train must have shape ({x.shape[0]},), got {tuple(y.shape)}")
        if x.shape[0] < 2:
            raise VBayesError(f"need at least 2 training points, got {x.shape[0]}")
        x = x.to(torch.float32)
        if not torch.isfinite(x).all():
            raise VBayesError("x_train contains non-finite values")
        if self.task == "regression":
            if y.dtype not in (torch.float16, torch.float32, torch.float64):
                raise VBayesError(f"regression targets must be floating point, got {y.dtype}")
            y = y.to(torch.float32)
            if not torch.isfinite(y).all():
                raise VBayesError("y_train contains non-finite values")
        else:
            if y.dtype.is_floating_point or y.dtype == torch.bool:
                raise VBayesError(f"classification targets must be integer class labels, got {y.dtype}")
            y = y.to(torch.int64)
            if int(y.min()) < 0:
                raise VBayesError("class labels must be >= 0")
            if self.n_classes is None:
                self.n_classes = max(2, int(y.max()) + 1)
            if int(y.max()) >= self.n_classes:
                raise VBayesError(f"class label {int(y.max())} out of range for n_classes={self.n_classes}")
        return x, y


def regression_or_classification_loss(
    out: Tensor, y: Tensor, task: str, head: GaussianHead | None
) -> Tensor:
    """Per-point negative log-likelihood ``(B,)`` of network outputs ``out`` ``(B, K)``."""
    if task == "classification":
        return F.cross_entropy(out, y, reduction="none")
    assert head is not None
    mu, sigma = head(out)
    return gaussian_nll(mu, sigma, y)


def stack_predictions(outs: Sequence[Tensor], task: str, head: GaussianHead | None, info: dict[str, Any]) -> Prediction:
    """Build a prediction from S network outputs, each ``(M, K)``."""
    out = torch.stack(list(outs))  # (S, M, K)
    if task == "classification":
        return ClassificationPrediction(probs=torch.softmax(out, dim=-1), info=dict(info))
    assert head is not None
    mu, sigma = head(out)
    return RegressionPrediction(mu=mu, sigma=sigma, info=dict(info))
