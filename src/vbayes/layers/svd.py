"""Sparse variational dropout (Molchanov, Ashukha & Vetrov 2017), sampled by local reparameterization.

Every weight of ``x W^T + b`` has the Gaussian posterior ``q(w_ij) = N(theta_ij, sigma2_ij)``, the
additive reparameterisation of Gaussian dropout ``w = theta (1 + sqrt(alpha) eps)`` with a
per-weight dropout rate

    alpha_ij = sigma2_ij / theta_ij^2,   log_alpha = clamp(log_sigma2 - log(theta^2 + 1e-8), -10, 10).

The layer stores ``theta`` ``(out, in)`` and ``log_sigma2`` ``(out, in)``; the bias is a plain
(deterministic) parameter. In "sample" mode the forward pass draws the pre-activations by the local
reparameterisation trick (Kingma, Salimans & Welling 2015): for an input row ``x`` each output is
``N(x theta^T + b, x^2 sigma2^T)``, independent across outputs and examples. In "mean" mode it
returns ``x (theta . mask)^T + b``, where ``mask`` drops every weight with
``log_alpha > prune_threshold`` (3.0: a dropout rate alpha > e^3 ~ 20, i.e. a weight whose
signal-to-noise ratio is below ~0.22).

The prior is the log-uniform ``p(|w|) ∝ 1 / |w|``, under which the KL of one weight depends on
``alpha`` only,

    KL(alpha) = E_{eps ~ N(0, 1)} log|1/sqrt(alpha) + eps| + (gamma + log 2) / 2 + const,

(an improper prior: the constant is arbitrary; with the one written here KL -> 0 as alpha -> inf).
:func:`kl_molchanov` is the paper's approximation (accurate to ~1e-2 nats for every alpha);
:func:`kl_kingma` is Kingma et al.'s polynomial one (valid for alpha <= 1 only, up to a constant).

Caution (Hron, Matthews & Ghahramani, ICML 2018, "Variational Bayesian dropout: pitfalls and
fixes"): with the log-uniform prior the posterior is improper and the "KL" is not a KL between
proper distributions, so the ELBO is not a bound on anything. Treat these layers as a sparsifying
*regulariser*, not as a posterior whose uncertainties one can trust.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vbayes.layers.base import BayesianModule, check_features_input, check_positive_ints

__all__ = ["LinearSVD", "kl_molchanov", "kl_kingma", "K1", "K2", "K3", "C1", "C2", "C3"]

K1, K2, K3 = 0.63576, 1.87320, 1.48695
C1, C2, C3 = 1.16145124, -1.50204118, 0.58629921
LOG_ALPHA_MIN, LOG_ALPHA_MAX = -10.0, 10.0


def kl_molchanov(log_alpha: Tensor) -> Tensor:
    """Molchanov et al. (2017) approximation of KL(q || log-uniform) per weight, elementwise (nats).

    ``KL ≈ k1 - k1 sigmoid(k2 + k3 log_alpha) + 0.5 log1p(exp(-log_alpha))``; it tends to 0 as
    ``alpha -> inf`` and to ``-0.5 log alpha + k1`` as ``alpha -> 0``. Same shape as ``log_alpha``.
    """
    return K1 - K1 * torch.sigmoid(K2 + K3 * log_alpha) + 0.5 * F.softplus(-log_alpha)


def kl_kingma(log_alpha: Tensor) -> Tensor:
    """Kingma, Salimans & Welling (2015) approximation of KL(q || log-uniform) per weight (nats).

    ``KL ≈ -(0.5 log alpha + c1 alpha + c2 alpha^2 + c3 alpha^3)`` up to an additive constant (the
    paper leaves it free; here it is 0). Fitted for ``alpha <= 1`` (``log_alpha <= 0``) only;
    beyond it the cubic diverges. Elementwise, same shape as ``log_alpha``.
    """
    alpha = log_alpha.exp()
    return -(0.5 * log_alpha + C1 * alpha + C2 * alpha.square() + C3 * alpha.pow(3))


class LinearSVD(BayesianModule):
    """``nn.Linear`` with sparse variational dropout on every weight (see the module).

    Input ``(*, in_features)`` -> ``(*, out_features)``.

    Args:
        in_features, out_features: as ``nn.Linear``.
        bias: whether the layer has a (deterministic) bias.
        log_sigma2_init: initial ``log_sigma2`` of every weight (the paper's -10).
        prune_threshold: weights with ``log_alpha`` above it are dropped in "mean" mode (3.0).

    Attributes:
        theta: weight means ``(out, in)``; log_sigma2: log weight variances ``(out, in)``;
        bias: ``(out,)`` or ``None``; generator: optional ``torch.Generator`` for the forward
        noise; sampling: ``"sample"`` (LRT draw, no pruning) or ``"mean"`` (pruned mean weights).

    Not supported: :func:`vbayes.frozen_sample` (the layer always draws per example).
    """

    estimator = "svd"

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, log_sigma2_init: float = -10.0,
                 prune_threshold: float = 3.0, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        check_positive_ints(name, in_features=in_features, out_features=out_features)
        if not math.isfinite(float(log_sigma2_init)):
            raise ValueError(f"{name}: log_sigma2_init must be finite, got {log_sigma2_init}")
        self.in_features, self.out_features = in_features, out_features
        self.log_sigma2_init = float(log_sigma2_init)
        self.prune_threshold = float(prune_threshold)
        self.generator: torch.Generator | None = None
        kw = {"device": device, "dtype": dtype}
        self.theta = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.log_sigma2 = nn.Parameter(torch.empty(out_features, in_features, **kw))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **kw))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``theta`` and ``bias`` as ``torch.nn`` initialises ``nn.Linear``; ``log_sigma2 = log_sigma2_init``."""
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.theta, a=math.sqrt(5))
            self.log_sigma2.fill_(self.log_sigma2_init)
            if self.bias is not None:
                bound = 1.0 / math.sqrt(self.in_features)
                nn.init.uniform_(self.bias, -bound, bound)

    # ----------------------------------------------------------------- the posterior
    @property
    def log_alpha(self) -> Tensor:
        """Per-weight log dropout rate ``(out, in)``, clamped to [-10, 10]."""
        return torch.clamp(self.log_sigma2 - torch.log(self.theta.square() + 1e-8), LOG_ALPHA_MIN, LOG_ALPHA_MAX)

    @property
    def weight_mu(self) -> Tensor:
        """Posterior mean of the weights ``(out, in)`` (``theta``)."""
        return self.theta

    @property
    def weight_std(self) -> Tensor:
        """Posterior std of the weights ``(out, in)``, ``exp(log_sigma2 / 2)``."""
        return self.log_sigma2.mul(0.5).exp()

    @property
    def weight_mask(self) -> Tensor:
        """Boolean ``(out, in)``: the weights kept, ``log_alpha <= prune_threshold``."""
        return self.log_alpha <= self.prune_threshold

    @property
    def kept_fraction(self) -> float:
        """Fraction of weights kept in "mean" mode (in [0, 1]; the bias is not counted)."""
        with torch.no_grad():
            return float(self.weight_mask.float().mean())

    def pruned_weight(self) -> Tensor:
        """``theta`` with the dropped weights set to exactly zero ``(out, in)``."""
        return torch.where(self.weight_mask, self.theta, torch.zeros_like(self.theta))

    def kl_divergence(self) -> Tensor:
        """Molchanov et al.'s approximate KL to the log-uniform prior, summed over weights (0-dim, nats)."""
        return kl_molchanov(self.log_alpha).sum()

    # ----------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """One LRT draw of the pre-activations ("sample") or the pruned-mean output ("mean")."""
        check_features_input(type(self).__name__, x, self.in_features)
        if self.sampling == "mean":
            return F.linear(x, self.pruned_weight(), self.bias)
        if self.sampling != "sample":
            raise ValueError(f"{type(self).__name__}: sampling must be 'sample' or 'mean', got {self.sampling!r}")
        mean = F.linear(x, self.theta, self.bias)
        # an all-zero input row gives var = 0 and an infinite sqrt gradient
        var = F.linear(x * x, self.log_sigma2.exp()).clamp_min(torch.finfo(x.dtype).tiny)
        eps = torch.randn(mean.shape, generator=self.generator, dtype=mean.dtype, device=mean.device)
        return torch.addcmul(mean, var.sqrt(), eps)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, prune_threshold={self.prune_threshold}")
