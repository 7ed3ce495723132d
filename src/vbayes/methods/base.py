"""The shared interface of every inference method, plus the pieces the NN methods reuse.

A :class:`Method` is built with ``(task, n_classes, hidden, epochs, seed, **options)``, fitted
with ``fit(x, y)`` and queried with ``predict(x)``, which returns a
:class:`~vbayes.methods.predictive.RegressionPrediction` (regression) or a
:class:`~vbayes.methods.predictive.ClassificationPrediction` (classification).

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
from vbayes.losses import gaussian_nll
from vbayes.methods.noise import NoiseModel, check_noise
from vbayes.methods.predictive import ClassificationPrediction, RegressionPrediction

TASKS = ("regression", "classification")
PRIOR_STD = {"regression": 1.0, "classification": 3.0}
"""Default prior scale of the Bayesian methods. One convention for all of them (``bbb``,
``flipout``, ``lrt``, ``sgld``, ``hmc``): every weight and every bias of a layer with ``fan_in``
inputs has the prior ``N(0, prior_std^2 / fan_in)``, so that the prior over functions stays O(1)
as the width grows (Neal 1996). With standardised targets a function prior of scale O(1) fits
regression; softmax logits need larger values to express confident decision boundaries (with
1.0, HMC on two moons reaches only 90% accuracy: the prior forces nearly linear boundaries; with
3.0, 97-98%)."""
FULL_BATCH_MAX = 1000
"""``batch_size=None`` trains on the full batch up to this many training points, else on 128."""

Prediction = RegressionPrediction | ClassificationPrediction


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body with the CPU torch RNG forked and seeded with ``seed`` (restored after)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


SMALL_LAYER = 200_000
"""Networks whose widest layer has fewer weights than this train and predict on one CPU thread:
their matrix products are too small to share, and on a busy 2-core machine a second thread
only waits (toy-gap, LRT: 2.5 ms a step on one thread, 49 ms on two with the cores loaded)."""


@contextmanager
def threads_for(widths: Sequence[int]) -> Iterator[None]:
    """Run the body on one torch thread when the MLP of layer ``widths`` is small (see
    :data:`SMALL_LAYER`), else with the threads as they are; restored after."""
    before = torch.get_num_threads()
    small = max((a * b for a, b in zip(widths[:-1], widths[1:])), default=0) < SMALL_LAYER
    if small and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def resolve_batch_size(batch_size: int | None, n: int) -> int:
    """The minibatch size for ``n`` training points: ``batch_size`` (at most ``n``), or with
    None the full batch when ``n <= FULL_BATCH_MAX`` and 128 otherwise."""
    if batch_size is None:
        return n if n <= FULL_BATCH_MAX else 128
    if int(batch_size) < 1:
        raise VBayesError(f"batch_size must be >= 1, got {batch_size}")
    return min(int(batch_size), n)


def train_loop(
    params: Sequence[nn.Parameter] | Iterator[nn.Parameter],
    loss_fn: Callable[[Tensor, Tensor, int], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    info: dict[str, Any],
    generator: torch.Generator | None = None,
    modules: Sequence[nn.Module] = (),
    tol: float | None = None,
    final_lr: float | None = None,
    on_epoch_end: Callable[[], None] | None = None,
) -> bool:
    """Adam on ``loss_fn(x_batch, y_batch, step)`` over shuffled minibatches; False on NaN.

    ``x`` ``(N, D)``, ``y`` ``(N,)``; ``steps`` optimiser steps (epochs are reshuffled as they
    end); ``step`` counts from 0. With ``final_lr`` the learning rate falls from ``lr`` to
    ``final_lr`` along a cosine over the ``steps`` (less optimiser noise at the end). The first
    non-finite loss stops training and sets ``info["error"]``. ``modules`` are put in train
    mode first. ``on_epoch_end()``, when given, is called after the last minibatch of every pass
    over the data (e.g. to validate and keep the best weights; it must leave the modules in train
    mode).

    Convergence check: the mean loss is compared over consecutive windows of
    ``max(50, steps // 20)`` steps. With ``tol`` (nats per point) training stops once a window
    improves on the one before by less than ``tol``, after at least a quarter of ``steps``.
    ``info`` gets ``steps`` (taken), ``epochs``, ``final_loss`` (mean of the last window) and
    ``converged`` (the last window improved by less than ``tol``, or 1e-3 when ``tol`` is None).
    """
    for module in modules:
        module.train()
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    schedule = None if final_lr is None else torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=final_lr)
    n = x.shape[0]
    batch_size = min(batch_size, n)
    window = max(50, steps // 20)
    check = 1e-3 if tol is None else float(tol)
    perm, pos = torch.randperm(n, generator=generator), 0
    total, previous, step = 0.0, None, 0
    info["converged"] = False
    while step < steps:
        if pos >= n:
            perm, pos = torch.randperm(n, generator=generator), 0
        idx = perm[pos : pos + batch_size]
        pos += batch_size
        loss = loss_fn(x[idx], y[idx], step)
        if not torch.isfinite(loss):
            info["error"] = f"training diverged: non-finite loss at step {step + 1}"
            return False
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if schedule is not None:
            schedule.step()
        total += float(loss.detach())
        step += 1
        if on_epoch_end is not None and pos >= n:
            on_epoch_end()
        if step % window == 0:
            mean = total / window
            info["final_loss"], total = mean, 0.0
            info["converged"] = previous is not None and previous - mean < check
            if tol is not None and info["converged"] and step >= steps // 4:
                break
            previous = mean
    info["steps"] = step
    info["epochs"] = step * batch_size / n
    return True


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
        self._check_noise_options()
        self._check_method_options()
        self.info: dict[str, Any] = {}
        self._fitted = False
        self._in_features: int | None = None

    # -- public API -------------------------------------------------------------------------
    def fit(self, x_train: Tensor, y_train: Tensor) -> "Method":
        """Fit on ``x_train`` ``(N, D)`` float32 and ``y_train`` ``(N,)``; returns ``self``."""
        x, y = self._check_xy(x_train, y_train)
        self.info = {"method": self.name}
        self._in_features = x.shape[1]
        with seeded(self.seed), threads_for(self._widths()):
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
        with seeded(self.seed + 104729), threads_for(self._widths()):
            pred = self._predict(x.to(torch.float32))
        pred.info = {**self.info, **pred.info}  # what the method adds to its prediction stays
        return pred

    def _widths(self) -> tuple[int, ...]:
        """Layer widths of the network, for :func:`threads_for` (the output width barely matters)."""
        return (int(self._in_features or 0), *self.hidden, 2)

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

    def _check_noise_options(self) -> None:
        if self.task == "regression" and "noise" in self.defaults:
            check_noise(self.options["noise"], self.options.get("noise_std"), self.name)

    def _check_method_options(self) -> None:
        """Raise :class:`VBayesError` for a bad value of a method's own option, at construction
        (before any training); subclasses override it (nothing to check by default)."""

    def prior_std(self) -> float:
        """The ``prior_std`` option, or the task's default :data:`PRIOR_STD` when it is None."""
        value = self.options.get("prior_std")
        value = PRIOR_STD[self.task] if value is None else float(value)
        if not value > 0:
            raise VBayesError(f"{self.name}: prior_std must be > 0, got {value}")
        return value

    def resolve_steps(self, n: int, batch_size: int, steps: int) -> int:
        """Optimiser steps: ``epochs`` passes of ``ceil(n / batch_size)`` steps when ``epochs``
        was given, else the ``steps`` budget."""
        if self.epochs is not None:
            return self.epochs * math.ceil(n / min(batch_size, n))
        return int(steps)

    def noise_model(self) -> NoiseModel | None:
        """The :class:`~vbayes.methods.noise.NoiseModel` of the ``noise`` / ``noise_std``
        options (regression), or None (classification)."""
        if self.task != "regression":
            return None
        return NoiseModel(self.options.get("noise", "heteroscedastic"), self.options.get("noise_std"))

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


def regression_or_classification_loss(out: Tensor, y: Tensor, task: str, head: NoiseModel | None) -> Tensor:
    """Per-point negative log-likelihood ``(B,)`` of network outputs ``out`` ``(B, K)``."""
    if task == "classification":
        return F.cross_entropy(out, y, reduction="none")
    assert head is not None
    mu, sigma = head(out)
    return gaussian_nll(mu, sigma, y)


def stack_predictions(outs: Sequence[Tensor], task: str, head: NoiseModel | None, info: dict[str, Any]) -> Prediction:
    """Build a prediction from S network outputs, each ``(M, K)``."""
    out = torch.stack(list(outs))  # (S, M, K)
    if task == "classification":
        return ClassificationPrediction(probs=torch.softmax(out, dim=-1), info=dict(info))
    assert head is not None
    mu, sigma = head(out)
    return RegressionPrediction(mu=mu, sigma=sigma, info=dict(info))
