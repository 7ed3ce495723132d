"""``vd``: variational dropout with learned per-weight dropout rates (Kingma, Salimans & Welling
2015) and its sparse variant (Molchanov, Ashukha & Vetrov 2017).

Every weight has ``q(w) = N(theta, alpha theta^2)`` with its own dropout rate alpha, sampled by
the local reparameterization trick (:class:`vbayes.layers.LinearSVD`); biases are point
estimates. The prior is the improper log-uniform ``p(|w|) ∝ 1 / |w|``. Variants:

* ``"sparse"`` (Molchanov et al.): log alpha free in [-10, 10], Molchanov's KL approximation;
  at prediction the weights with ``log_alpha > prune_threshold`` (3) are dropped.
* ``"kingma"`` (Kingma et al.'s variant B, with the additive parameterisation): alpha capped at 1
  (log alpha <= 0), their polynomial KL approximation; nothing reaches the pruning threshold.

Loss per minibatch: the NLL averaged over ``train_samples`` LRT draws and the batch, plus
``w(step) * KL / N`` with the paper's warm-up: ``w = 0`` for the first ``kl_delay`` of the steps,
then linear up to ``kl_weight`` at ``kl_warmup`` (0.025 and 0.1: 5 and 20 of the paper's 200
epochs). The noise models, Adam and its cosine learning-rate decay are those of ``bbb``
(:class:`~vbayes.methods.variational.VariationalMethod`).

**Caution (Hron, Matthews & Ghahramani 2018):** under the log-uniform prior the posterior is
improper and the "KL" has an arbitrary constant, so the objective is not a bound on the log
evidence and q is not an approximate posterior to trust: treat ``vd`` as a (sparsifying)
regulariser, not as a UQ baseline. Hence ``info`` holds no ``elbo``: ``info["objective"]`` is the
final training objective per training point, ``mean_n E_q[-log p(y_n | x_n, w)] + KL / N`` (the
unpruned q, KL weight 1, ``objective_samples`` LRT draws; ``objective_se`` its Monte-Carlo
standard error), and ``info["objective_note"]`` says so.

Sparsity (weights only, biases not counted): ``info["sparsity"]`` is the fraction of weights
pruned, ``info["compression"]`` the number of weights over the number kept (inf when none is
kept), ``info["kept_per_layer"]`` the kept fraction of each layer, ``info["n_weights"]`` the
total.

Prediction: ``predict="sample"`` returns ``n_samples`` LRT draws of the pruned network (the
dropped weights contribute neither mean nor variance); ``"mean"`` one pass of the pruned mean
network, the paper's test-time net (S = 1: no epistemic spread).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vbayes.errors import VBayesError
from vbayes.layers import kl_divergence
from vbayes.layers.sampling import sampling_mode
from vbayes.layers.svd import LOG_ALPHA_MAX, LinearSVD
from vbayes.methods.base import Prediction, resolve_batch_size, stack_predictions, train_loop
from vbayes.methods.variational import VariationalMethod
from vbayes.models.nets import mlp

VARIANTS: dict[str, tuple[float, str]] = {"sparse": (LOG_ALPHA_MAX, "molchanov"), "kingma": (0.0, "kingma")}
"""Variant -> (the upper clamp of log alpha, the KL approximation of the layers)."""

OBJECTIVE_NOTE = ("NLL + KL/N to the improper log-uniform prior (per training point): a training "
                  "objective, not a bound on the log evidence (Hron et al. 2018)")


def kl_schedule(step: int, steps: int, delay: float, warmup: float, beta: float = 1.0) -> float:
    """KL weight at optimiser ``step`` (0-based) of ``steps``: 0 before ``delay * steps``, then
    linear up to ``beta`` at ``warmup * steps`` (``0 <= delay <= warmup <= 1``), ``beta`` after."""
    start, end = delay * steps, warmup * steps
    if step < start:
        return 0.0
    if step >= end:
        return float(beta)
    return float(beta) * (step - start) / (end - start)


class VDMethod(VariationalMethod):
    """Variational dropout: LRT-sampled ``LinearSVD`` layers under the log-uniform prior.

    Options:
        variant: ``"sparse"`` (Molchanov et al., default) or ``"kingma"`` (alpha <= 1).
        log_sigma2_init: initial log variance of every weight (-10, the paper's).
        prune_threshold: weights with ``log_alpha`` above it are dropped at prediction (3.0).
        predict: ``"sample"`` (``n_samples`` draws of the pruned net) or ``"mean"`` (S = 1).
        train_samples: LRT draws per step, averaged in the NLL (1, the paper's).
        n_samples: draws of the prediction (100).
        objective_samples: draws of the final objective estimate (100).
        kl_weight, kl_delay, kl_warmup: the KL warm-up (:func:`kl_schedule`; 1.0, 0.025, 0.1).
        lr, final_lr, batch_size, steps, tol, activation, noise, noise_std: as ``bbb``
            (``tol`` is ignored while the KL weight is warming up, i.e. whenever kl_warmup > 0).
        prior_std: accepted for the common interface and ignored: the log-uniform prior has no
            scale (``info["prior"]`` says which prior was used).
    """

    name: ClassVar[str] = "vd"
    estimator: ClassVar[str] = "svd"
    noise_per_example: ClassVar[bool] = True
    independent_rows: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {
        **{k: VariationalMethod.defaults[k] for k in (
            "n_samples", "lr", "final_lr", "batch_size", "steps", "tol", "activation", "noise", "noise_std",
            "kl_weight", "prior_std")},
        "variant": "sparse",
        "log_sigma2_init": -10.0,
        "prune_threshold": 3.0,
        "predict": "sample",
        "train_samples": 1,
        "objective_samples": 100,
        "kl_delay": 0.025,
        "kl_warmup": 0.1,
    }

    # ----------------------------------------------------------------- options
    def _check_method_options(self) -> None:
        self._check_options()

    def _check_options(self) -> tuple[float, float, float]:
        """Validate the options before training; returns ``(kl_delay, kl_warmup, kl_weight)``."""
        opt = self.options
        if opt["variant"] not in VARIANTS:
            raise VBayesError(f"{self.name}: variant must be one of {', '.join(VARIANTS)}, got {opt['variant']!r}")
        if opt["predict"] not in ("sample", "mean"):
            raise VBayesError(f"{self.name}: predict must be sample or mean, got {opt['predict']!r}")
        try:
            delay, warmup, beta = float(opt["kl_delay"]), float(opt["kl_warmup"]), float(opt["kl_weight"])
        except (TypeError, ValueError):
            raise VBayesError(f"{self.name}: kl_delay, kl_warmup and kl_weight must be numbers") from None
        if not 0.0 <= delay <= warmup <= 1.0:
            raise VBayesError(f"{self.name}: need 0 <= kl_delay <= kl_warmup <= 1, got {delay} and {warmup}")
        if not beta >= 0.0:
            raise VBayesError(f"{self.name}: kl_weight must be >= 0, got {opt['kl_weight']!r}")
        for key in ("train_samples", "n_samples", "objective_samples"):
            if int(opt[key]) < (2 if key == "objective_samples" else 1):
                raise VBayesError(f"{self.name}: {key} must be >= {2 if key == 'objective_samples' else 1}, "
                                  f"got {opt[key]!r}")
        return delay, warmup, beta

    def _build(self, in_features: int) -> None:
        opt = self.options
        log_alpha_max, kl = VARIANTS[opt["variant"]]
        self.info["prior"] = "log-uniform (improper)"

        def linear(a: int, b: int) -> nn.Module:
            try:
                return LinearSVD(a, b, log_sigma2_init=float(opt["log_sigma2_init"]),
                                 prune_threshold=float(opt["prune_threshold"]), log_alpha_max=log_alpha_max, kl=kl)
            except (TypeError, ValueError) as err:
                raise VBayesError(f"{self.name}: {err}") from None

        self.head = self.noise_model()
        self.model = mlp(in_features, self.hidden, self.out_features, activation=opt["activation"], linear=linear)

    def svd_layers(self) -> list[LinearSVD]:
        """The network's sparse-VD layers, input to output."""
        return [m for m in self.model.modules() if isinstance(m, LinearSVD)]

    # ----------------------------------------------------------------- training
    def loss(self, x: Tensor, y: Tensor, step: int, steps: int, n: int) -> Tensor:
        """The training loss of minibatch ``x`` ``(B, D)``, ``y`` ``(B,)`` at ``step`` of ``steps``
        with ``n`` training points: mean NLL over ``train_samples`` draws + w(step) KL / n (0-dim)."""
        delay, warmup, beta = (float(self.options[k]) for k in ("kl_delay", "kl_warmup", "kl_weight"))
        scale = kl_schedule(step, steps, delay, warmup, beta) / n
        return self._data_loss(x, y, int(self.options["train_samples"])) + scale * kl_divergence(self.model)

    def _fit(self, x: Tensor, y: Tensor) -> None:
        _, warmup, _ = self._check_options()
        opt = self.options
        self._build(x.shape[1])
        params = list(self.model.parameters()) + (list(self.head.parameters()) if self.head else [])
        n = x.shape[0]
        batch_size = resolve_batch_size(opt["batch_size"], n)
        steps = self.resolve_steps(n, batch_size, opt["steps"])
        ok = train_loop(params, lambda xb, yb, step: self.loss(xb, yb, step, steps, n), x, y, steps=steps,
                        batch_size=batch_size, lr=opt["lr"], info=self.info, modules=[self.model],
                        tol=None if warmup > 0 or opt["tol"] is None else float(opt["tol"]), final_lr=opt["final_lr"])
        self.info["kl"] = float(kl_divergence(self.model).detach())
        self.info.update(self.sparsity())
        if ok:
            self.info["objective"], self.info["objective_se"] = self.objective(x, y, int(opt["objective_samples"]))
            self.info["objective_note"] = OBJECTIVE_NOTE

    @torch.no_grad()
    def sparsity(self) -> dict[str, Any]:
        """``sparsity`` (fraction of weights pruned), ``compression`` (weights / kept weights),
        ``kept_per_layer`` and ``n_weights`` of the fitted network (biases not counted)."""
        layers = self.svd_layers()
        total = sum(layer.theta.numel() for layer in layers)
        kept = sum(int(layer.weight_mask.sum()) for layer in layers)
        return {"sparsity": 1.0 - kept / total, "compression": total / kept if kept else math.inf,
                "kept_per_layer": [layer.kept_fraction for layer in layers], "n_weights": total}

    @torch.no_grad()
    def objective(self, x: Tensor, y: Tensor, draws: int = 100) -> tuple[float, float]:
        """``mean_n E_q[-log p(y_n | x_n, w)] + KL / N`` of the training set ``x`` ``(N, D)``,
        ``y`` ``(N,)`` (the unpruned q, KL weight 1) from ``draws`` LRT draws: ``(value, se)``."""
        value, se = super().elbo(x, y, draws)
        return -value, se

    def elbo(self, x: Tensor, y: Tensor, draws: int = 1000) -> tuple[float, float]:
        """Not defined for ``vd``: the log-uniform prior is improper (use :meth:`objective`)."""
        raise VBayesError(f"{self.name}: no ELBO under the improper log-uniform prior; use objective()")

    # ----------------------------------------------------------------- prediction
    def _predict(self, x: Tensor) -> Prediction:
        self.model.eval()
        if self.options["predict"] == "mean":
            with sampling_mode(self.model, "mean"):
                return stack_predictions([self.model(x)], self.task, self.head, self.info)
        layers = self.svd_layers()
        try:
            for layer in layers:
                layer.prune_in_sample = True
            outs = [self.model(x) for _ in range(int(self.options["n_samples"]))]
        finally:
            for layer in layers:
                layer.prune_in_sample = False
        return stack_predictions(outs, self.task, self.head, self.info)
