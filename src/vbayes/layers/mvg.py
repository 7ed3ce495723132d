"""Matrix-variate Gaussian weights (Louizos & Welling 2016), sampled by local reparameterization.

The weight matrix ``W`` of ``x W + b`` (``W`` is ``(in, out)``; the layer stores its mean as
``weight_mu = M^T``, ``(out, in)``, the ``nn.Linear`` convention) has the posterior

    q(W) = MN(M, U, V),   vec(W) ~ N(vec(M), V (x) U),

with diagonal row covariance ``U`` ``(in,)`` and column covariance ``V`` ``(out,)``, so
``Var(W_ij) = U_i V_j`` and the weights are independent. For an input row ``x`` each
pre-activation ``b_j = sum_i x_i W_ij`` is Gaussian with mean ``(x M)_j`` and variance
``(x^2 . U) V_j``, independent across ``j``; the forward pass draws it directly (one normal per
output element, independent across examples). The bias is a mean-field Gaussian
``N(bias_mu, softplus(bias_rho)^2)``, added to the same draw.

The KL to the prior ``N(m, s^2)`` on every weight is closed form,

    KL = 0.5 [ tr(U) tr(V) / s^2 + ||M - m||_F^2 / s^2 - in out
               - out log det U - in log det V + in out log s^2 ],

plus the bias' elementwise Gaussian KL to the same prior. ``U`` and ``V`` are stored as logs
(``log_u``, ``log_v``); their product is what matters (``U c``, ``V / c`` is the same q). The
paper's learned pseudo-data are not implemented.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vbayes.layers._fused import softplus_inverse
from vbayes.layers._variational import DEFAULT_POSTERIOR_STD
from vbayes.layers.base import BayesianModule, check_features_input, check_positive_ints
from vbayes.layers.priors import Normal, as_prior, kl_normal_to_prior

__all__ = ["LinearMVG", "mvg_kl"]


def mvg_kl(mean: Tensor, log_u: Tensor, log_v: Tensor, loc: float, scale: float) -> Tensor:
    """KL(MN(mean, diag exp(log_u), diag exp(log_v)) || N(loc, scale^2 I)) in nats.

    ``mean`` ``(in, out)``, ``log_u`` ``(in,)``, ``log_v`` ``(out,)``.
    """
    n_in, n_out = mean.shape
    s2 = scale * scale
    return 0.5 * (log_u.exp().sum() * log_v.exp().sum() / s2 + (mean - loc).pow(2).sum() / s2 - n_in * n_out
                  - n_out * log_u.sum() - n_in * log_v.sum() + n_in * n_out * math.log(s2))


class LinearMVG(BayesianModule):
    """Bayesian ``nn.Linear`` with a matrix-variate Gaussian weight posterior (see the module).

    Input ``(*, in_features)`` -> ``(*, out_features)``.

    Args:
        in_features, out_features: as ``nn.Linear``.
        bias: whether the layer has a (mean-field Gaussian) bias.
        prior: a ``vbayes.layers.priors.Normal`` on every weight and bias (default N(0, 1)); the
            closed-form KL needs a Normal prior, any other raises ``TypeError``.
        posterior_std_init: initial posterior std of every weight (``U_i = V_j`` = this value,
            so ``sqrt(U_i V_j)`` is it) and bias.

    Attributes:
        weight_mu: ``M^T`` ``(out, in)``; ``log_u`` ``(in,)``; ``log_v`` ``(out,)``;
        bias_mu, bias_rho: ``(out,)`` or ``None``; generator: optional ``torch.Generator`` for
        the forward noise; sampling: ``"sample"`` or ``"mean"``.

    Not supported: :func:`vbayes.frozen_sample` (the layer always draws per example).
    """

    estimator = "mvg"

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, prior: Any = None,
                 posterior_std_init: float = DEFAULT_POSTERIOR_STD, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        check_positive_ints(name, in_features=in_features, out_features=out_features)
        std = float(posterior_std_init)
        if not (std > 0 and math.isfinite(std)):
            raise ValueError(f"{name}: posterior_std_init must be a finite number > 0, got {posterior_std_init}")
        self.prior = as_prior(prior, name)
        if not isinstance(self.prior, Normal):
            raise TypeError(f"{name}: the matrix-variate KL is closed form for a priors.Normal prior only, "
                            f"got {self.prior!r}")
        self.in_features, self.out_features = in_features, out_features
        self.posterior_std_init = std
        self.generator: torch.Generator | None = None
        kw = {"device": device, "dtype": dtype}
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.log_u = nn.Parameter(torch.empty(in_features, **kw))
        self.log_v = nn.Parameter(torch.empty(out_features, **kw))
        if bias:
            self.bias_mu = nn.Parameter(torch.empty(out_features, **kw))
            self.bias_rho = nn.Parameter(torch.empty(out_features, **kw))
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_rho", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """M as ``torch.nn`` initialises ``nn.Linear``; every weight's and bias' std = ``posterior_std_init``."""
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.weight_mu, a=math.sqrt(5))
            self.log_u.fill_(math.log(self.posterior_std_init))
            self.log_v.fill_(math.log(self.posterior_std_init))
            if self.bias_mu is not None:
                bound = 1.0 / math.sqrt(self.in_features)
                nn.init.uniform_(self.bias_mu, -bound, bound)
                rho = softplus_inverse(torch.tensor(self.posterior_std_init, dtype=torch.float64)).item()
                self.bias_rho.fill_(rho)

    # ----------------------------------------------------------------- the posterior
    @property
    def U(self) -> Tensor:  # noqa: N802 - the paper's name
        """Diagonal of the row covariance ``(in,)``."""
        return self.log_u.exp()

    @property
    def V(self) -> Tensor:  # noqa: N802 - the paper's name
        """Diagonal of the column covariance ``(out,)``."""
        return self.log_v.exp()

    @property
    def weight_std(self) -> Tensor:
        """Marginal posterior std of each weight, ``sqrt(U_i V_j)``, in ``weight_mu``'s shape ``(out, in)``."""
        return (self.log_v[:, None] + self.log_u[None, :]).mul(0.5).exp()

    @property
    def bias_std(self) -> Tensor | None:
        """Posterior std of the biases ``(out,)``, or ``None`` without bias."""
        return None if self.bias_rho is None else F.softplus(self.bias_rho)

    def kl_divergence(self) -> Tensor:
        """KL(q(W, b) || prior), closed form (0-dim, nats)."""
        p = self.prior
        kl = mvg_kl(self.weight_mu.T, self.log_u, self.log_v, p.loc_value, p.scale_value)
        if self.bias_mu is not None:
            kl = kl + kl_normal_to_prior(self.bias_mu, self.bias_std, p)
        return kl

    # ----------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """One draw of the pre-activations (or the posterior-mean output in "mean" mode)."""
        check_features_input(type(self).__name__, x, self.in_features)
        mean = F.linear(x, self.weight_mu, self.bias_mu)
        if self.sampling == "mean":
            return mean
        if self.sampling != "sample":
            raise ValueError(f"{type(self).__name__}: sampling must be 'sample' or 'mean', got {self.sampling!r}")
        var = ((x * x) @ self.U).unsqueeze(-1) * self.V  # (*, out)
        if self.bias_mu is not None:
            var = var + self.bias_std.square()
        else:  # an all-zero input row would give var = 0 and an infinite sqrt gradient
            var = var.clamp_min(torch.finfo(var.dtype).tiny)
        eps = torch.randn(mean.shape, generator=self.generator, dtype=mean.dtype, device=mean.device)
        return torch.addcmul(mean, var.sqrt(), eps)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias_mu is not None}, prior={self.prior!r}")
