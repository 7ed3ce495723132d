"""Sparse variational dropout (Molchanov, Ashukha & Vetrov 2017), sampled by local reparameterization.

Every weight of the layer has the Gaussian posterior ``q(w) = N(theta, alpha theta^2)``, the
additive reparameterisation of Gaussian dropout ``w = theta (1 + sqrt(alpha) eps)`` with a
per-weight dropout rate

    log_alpha = clamp(log_sigma2 - log(theta^2 + 1e-8), LOG_ALPHA_MIN, log_alpha_max),

``log_alpha_max`` = 10 (sparse VD) or 0 (Kingma et al.'s variant: alpha <= 1). The layer stores
``theta`` and ``log_sigma2`` (the weight's shape); the bias is a plain (deterministic) parameter.
The variance used everywhere is ``sigma2 = alpha theta^2`` of the clamped alpha, so the KL and
the forward pass see the same q (``log_sigma2`` beyond the clamp has no effect). Where the clamp
is active ``log_sigma2`` gets no gradient (as in the reference code's clip to [-8, 8]): a large
weight (``theta^2 > e^10 sigma2``) keeps ``alpha = e^-10``, i.e. a variance that may be smaller
than its posterior's, until ``theta`` shrinks.

In "sample" mode the forward pass draws the pre-activations by the local reparameterisation
trick (Kingma, Salimans & Welling 2015): each output is ``N(op(x, theta) + b, op(x^2, sigma2))``,
independent across outputs, examples and (for a convolution) positions; ``op`` is ``F.linear``
or ``F.conv2d``. In "mean" mode it returns ``op(x, theta . mask) + b``, where ``mask`` drops every
weight with ``log_alpha > prune_threshold`` (3.0: a dropout rate alpha > e^3 ~ 20, i.e. a weight
whose signal-to-noise ratio is below ~0.22). With ``prune_in_sample = True`` the sample mode
drops the same weights (from the mean and the variance): draws of the pruned network.

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
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from vbayes.layers.base import (BayesianModule, check_conv_channels, check_features_input, check_positive_ints,
                               shape_text)

__all__ = ["LinearSVD", "Conv2dSVD", "kl_molchanov", "kl_kingma", "KL_APPROXIMATIONS",
           "K1", "K2", "K3", "C1", "C2", "C3"]

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


KL_APPROXIMATIONS: dict[str, Callable[[Tensor], Tensor]] = {"molchanov": kl_molchanov, "kingma": kl_kingma}
"""The per-weight KL approximations by name (the ``kl`` argument of the layers)."""


class _SVDLayer(BayesianModule):
    """Shared parameters, posterior, pruning, KL and forward of the sparse-VD layers.

    A subclass calls :meth:`_init_svd` and defines ``_op(x, weight, bias)`` and ``_check_input``.
    """

    estimator = "svd"

    def _init_svd(self, weight_shape: tuple[int, ...], bias_size: int | None, fan_in: int, *,
                  log_sigma2_init: float, prune_threshold: float, log_alpha_max: float, kl: str,
                  device: Any, dtype: Any) -> None:
        name = type(self).__name__
        for arg, value in (("log_sigma2_init", log_sigma2_init), ("prune_threshold", prune_threshold),
                           ("log_alpha_max", log_alpha_max)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: {arg} must be a finite number, got {value!r}")
        if not LOG_ALPHA_MIN < log_alpha_max <= LOG_ALPHA_MAX:
            raise ValueError(f"{name}: log_alpha_max must be in ({LOG_ALPHA_MIN:g}, {LOG_ALPHA_MAX:g}], "
                             f"got {log_alpha_max!r}")
        if kl not in KL_APPROXIMATIONS:
            raise ValueError(f"{name}: kl must be one of {', '.join(KL_APPROXIMATIONS)}, got {kl!r}")
        if kl == "kingma" and log_alpha_max > 0:
            raise ValueError(f"{name}: kl='kingma' is fitted for alpha <= 1 only; it needs log_alpha_max <= 0, "
                             f"got {log_alpha_max!r}")
        self.fan_in = fan_in
        self.log_sigma2_init = float(log_sigma2_init)
        self.prune_threshold = float(prune_threshold)
        self.log_alpha_max = float(log_alpha_max)
        self.kl = kl
        self.prune_in_sample = False
        self.generator: torch.Generator | None = None
        kw = {"device": device, "dtype": dtype}
        self.theta = nn.Parameter(torch.empty(weight_shape, **kw))
        self.log_sigma2 = nn.Parameter(torch.empty(weight_shape, **kw))
        if bias_size is not None:
            self.bias = nn.Parameter(torch.empty(bias_size, **kw))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``theta`` and ``bias`` as ``torch.nn`` initialises ``nn.Linear`` / ``nn.Conv2d``;
        ``log_sigma2 = log_sigma2_init``."""
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.theta, a=math.sqrt(5))
            self.log_sigma2.fill_(self.log_sigma2_init)
            if self.bias is not None:
                bound = 1.0 / math.sqrt(self.fan_in)
                nn.init.uniform_(self.bias, -bound, bound)

    # ----------------------------------------------------------------- the posterior
    @property
    def log_alpha(self) -> Tensor:
        """Per-weight log dropout rate (the weight's shape), clamped to [-10, ``log_alpha_max``]."""
        return torch.clamp(self.log_sigma2 - torch.log(self.theta.square() + 1e-8), LOG_ALPHA_MIN, self.log_alpha_max)

    @property
    def weight_mu(self) -> Tensor:
        """Posterior mean of the weights (``theta``)."""
        return self.theta

    @property
    def weight_var(self) -> Tensor:
        """Posterior variance of the weights ``alpha theta^2`` (the clamped alpha)."""
        return self.log_alpha.exp() * self.theta.square()

    @property
    def weight_std(self) -> Tensor:
        """Posterior std of the weights, ``sqrt(alpha) |theta|``."""
        return self.weight_var.sqrt()

    @property
    def weight_mask(self) -> Tensor:
        """Boolean, the weight's shape: the weights kept, ``log_alpha <= prune_threshold``."""
        return self.log_alpha <= self.prune_threshold

    @property
    def kept_fraction(self) -> float:
        """Fraction of weights kept in "mean" mode (in [0, 1]; the bias is not counted)."""
        with torch.no_grad():
            return float(self.weight_mask.float().mean())

    def pruned_weight(self) -> Tensor:
        """``theta`` with the dropped weights set to exactly zero (the weight's shape)."""
        return torch.where(self.weight_mask, self.theta, torch.zeros_like(self.theta))

    def kl_divergence(self) -> Tensor:
        """The ``kl`` approximation of KL(q || log-uniform), summed over the weights (0-dim, nats)."""
        return KL_APPROXIMATIONS[self.kl](self.log_alpha).sum()

    # ----------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """One LRT draw of the pre-activations ("sample") or the pruned-mean output ("mean")."""
        self._check_input(x)
        if self.sampling == "mean":
            return self._op(x, self.pruned_weight(), self.bias)
        if self.sampling != "sample":
            raise ValueError(f"{type(self).__name__}: sampling must be 'sample' or 'mean', got {self.sampling!r}")
        theta, var_w = self.theta, self.weight_var
        if self.prune_in_sample:
            mask = self.weight_mask
            theta, var_w = theta * mask, var_w * mask
        mean = self._op(x, theta, self.bias)
        # an all-zero input patch gives var = 0 and an infinite sqrt gradient
        var = self._op(x * x, var_w, None).clamp_min(torch.finfo(x.dtype).tiny)
        eps = torch.randn(mean.shape, generator=self.generator, dtype=mean.dtype, device=mean.device)
        return torch.addcmul(mean, var.sqrt(), eps)

    def _op(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _check_input(self, x: Tensor) -> None:
        raise NotImplementedError

    def _svd_repr(self) -> str:
        extra = f", log_alpha_max={self.log_alpha_max:g}, kl={self.kl!r}" if self.kl != "molchanov" else ""
        return f"bias={self.bias is not None}, prune_threshold={self.prune_threshold}{extra}"


class LinearSVD(_SVDLayer):
    """``nn.Linear`` with sparse variational dropout on every weight (see the module).

    Input ``(*, in_features)`` -> ``(*, out_features)``.

    Args:
        in_features, out_features: as ``nn.Linear``.
        bias: whether the layer has a (deterministic) bias.
        log_sigma2_init: initial ``log_sigma2`` of every weight (the paper's -10).
        prune_threshold: weights with ``log_alpha`` above it are dropped in "mean" mode (3.0).
        log_alpha_max: upper clamp of ``log_alpha`` (10; 0 caps alpha at 1 as Kingma et al.).
        kl: ``"molchanov"`` (default) or ``"kingma"`` (needs ``log_alpha_max <= 0``).

    Attributes:
        theta: weight means ``(out, in)``; log_sigma2: log weight variance parameters ``(out, in)``;
        bias: ``(out,)`` or ``None``; generator: optional ``torch.Generator`` for the forward
        noise; sampling: ``"sample"`` (LRT draw) or ``"mean"`` (pruned mean weights);
        prune_in_sample: whether sample mode drops the pruned weights too (False).

    Not supported: :func:`vbayes.frozen_sample` (the layer always draws per example).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, log_sigma2_init: float = -10.0,
                 prune_threshold: float = 3.0, log_alpha_max: float = LOG_ALPHA_MAX, kl: str = "molchanov",
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        check_positive_ints(type(self).__name__, in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        self._init_svd((out_features, in_features), out_features if bias else None, in_features,
                       log_sigma2_init=log_sigma2_init, prune_threshold=prune_threshold,
                       log_alpha_max=log_alpha_max, kl=kl, device=device, dtype=dtype)

    def _op(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, weight, bias)

    def _check_input(self, x: Tensor) -> None:
        check_features_input(type(self).__name__, x, self.in_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self._svd_repr()}"


class Conv2dSVD(_SVDLayer):
    """``nn.Conv2d`` (zero padding) with sparse variational dropout on every kernel weight.

    Input ``(N, C_in, H, W)`` or ``(C_in, H, W)`` -> ``(N, C_out, H', W')`` or ``(C_out, H', W')``,
    ``H', W'`` as ``nn.Conv2d``. The LRT draws every output element (example, channel, position)
    independently: mean ``conv(x, theta) + b``, variance ``conv(x^2, alpha theta^2)``; the
    correlation between positions that share a weight is dropped (exact marginals only).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as
            ``nn.Conv2d`` (``padding`` an int, a pair, ``"same"`` or ``"valid"``).
        log_sigma2_init, prune_threshold, log_alpha_max, kl: as :class:`LinearSVD`.

    Attributes: as :class:`LinearSVD`, with ``theta`` and ``log_sigma2`` of shape
    ``(C_out, C_in / groups, kH, kW)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, *, log_sigma2_init: float = -10.0,
                 prune_threshold: float = 3.0, log_alpha_max: float = LOG_ALPHA_MAX, kl: str = "molchanov",
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        check_conv_channels(name, in_channels, out_channels, groups)
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        for arg, value in (("kernel_size", self.kernel_size), ("stride", self.stride), ("dilation", self.dilation)):
            if len(value) != 2 or not all(isinstance(v, int) and v >= 1 for v in value):
                raise ValueError(f"{name}: {arg} must be a positive int or a pair of them, got {value!r}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a pair or 'same'/'valid', got {padding!r}")
            self.padding: Any = padding
        else:
            self.padding = _pair(padding)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        fan_in = shape[1] * self.kernel_size[0] * self.kernel_size[1]
        self._init_svd(shape, out_channels if bias else None, fan_in, log_sigma2_init=log_sigma2_init,
                       prune_threshold=prune_threshold, log_alpha_max=log_alpha_max, kl=kl,
                       device=device, dtype=dtype)

    def _op(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def _check_input(self, x: Tensor) -> None:
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
        if x.dim() not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(f"{name}: expected input of shape (N, {self.in_channels}, H, W) or "
                             f"({self.in_channels}, H, W), got {shape_text(x)}")

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, padding={self.padding}")
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return f"{s}, {self._svd_repr()}"
