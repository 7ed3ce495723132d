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
(``log_u``, ``log_v``); their product is what matters (``U c``, ``V / c`` is the same q).

Pseudo-data (``pseudo_data=P > 0``, the paper's Section 3 and the reference code
``AMLab-Amsterdam/SEVDL_MGP``): ``P`` learned pseudo-inputs ``Z`` ``(P, in)`` and pseudo-outputs
``T`` ``(P, out)``, and the weights are used conditioned on ``T = Z W`` under q. Each column of
``W`` is ``N(M_:j, V_j U)`` and ``T_:j = Z W_:j``, so for a batch ``x`` ``(B, in)``, with
``S11 = Z U Z^T + 1e-6 I`` ``(P, P)``, ``S12 = Z U x^T`` ``(P, B)``, ``S22 = diag(x U x^T)`` ``(B,)``,
the pre-activations are independent Gaussians with

    mean  x M + S12^T S11^{-1} (T - Z M)                    (B, out)
    var   (S22 - diag(S12^T S11^{-1} S12)) (outer) V        (B, out)

(plus the bias' mean and variance), sampled directly (local reparameterization) with a Cholesky
factor of ``S11`` and triangular solves. ``Z`` and ``T`` start ``Uniform(-0.01, 0.01)``, as in the
reference code (which scales inputs and pseudo-inputs alike by ``1 / sqrt(in)``, a scale that
``M`` and ``U`` absorb here).

The objective with pseudo-data, and where it departs from the paper. As in the reference code,
the KL term stays the closed-form KL of the *unconditioned* MN(M, U, V) above: the pseudo-data
are free variational parameters that reshape the posterior at no KL cost. This is not the KL of
the conditioned q that the forward pass uses (that q is nearly degenerate in the ``P``
directions per column that ``T`` pins, and its exact KL grows without bound as the 1e-6
jitter shrinks), so with ``P > 0`` the "ELBO" is the paper's surrogate objective, not a bound on
the evidence. Departures: (1) the reference puts multiplicative Gaussian noise on ``Z`` and ``T``,
regularised by Kingma et al.'s variational-dropout KL polynomial, with the noise variance clipped
at an upper bound (0.005 for yacht) at which its regulariser (offset by its own value there) is
zero and towards which it pushes; that noise does not turn the objective into an ELBO either, and
it is not implemented: ``Z`` and ``T`` are point estimates. (2) The reference folds the bias into
``W`` as a last input row (so the bias is conditioned too, and ``Z`` has a bias column); here the
bias stays a separate mean-field Gaussian, not conditioned. (3) The reference's regression layer
adds Gamma hyper-priors on the row and column precisions; here the prior is the fixed Normal.
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

PSEUDO_JITTER = 1e-6
"""Added to the diagonal of ``Z U Z^T`` before its Cholesky factorisation (the reference's value)."""
PSEUDO_INIT = 0.01
"""``Z`` and ``T`` start ``Uniform(-PSEUDO_INIT, PSEUDO_INIT)`` (the reference's value)."""


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
        pseudo_data: ``P``, the number of learned pseudo-data points the weights are conditioned
            on (see the module); 0 (default) is the plain matrix-normal layer.

    Attributes:
        weight_mu: ``M^T`` ``(out, in)``; ``log_u`` ``(in,)``; ``log_v`` ``(out,)``;
        bias_mu, bias_rho: ``(out,)`` or ``None``; pseudo_inputs ``Z`` ``(P, in)`` and
        pseudo_outputs ``T`` ``(P, out)``, or ``None`` when ``P = 0``; generator: optional
        ``torch.Generator`` for the forward noise; sampling: ``"sample"`` or ``"mean"``.

    Not supported: :func:`vbayes.frozen_sample` (the layer always draws per example).
    """

    estimator = "mvg"

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, prior: Any = None,
                 posterior_std_init: float = DEFAULT_POSTERIOR_STD, pseudo_data: int = 0, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        check_positive_ints(name, in_features=in_features, out_features=out_features)
        std = float(posterior_std_init)
        if not (std > 0 and math.isfinite(std)):
            raise ValueError(f"{name}: posterior_std_init must be a finite number > 0, got {posterior_std_init}")
        if isinstance(pseudo_data, bool) or not isinstance(pseudo_data, int) or pseudo_data < 0:
            raise ValueError(f"{name}: pseudo_data must be an int >= 0, got {pseudo_data!r}")
        self.prior = as_prior(prior, name)
        if not isinstance(self.prior, Normal):
            raise TypeError(f"{name}: the matrix-variate KL is closed form for a priors.Normal prior only, "
                            f"got {self.prior!r}")
        self.in_features, self.out_features = in_features, out_features
        self.posterior_std_init = std
        self.pseudo_data = pseudo_data
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
        if pseudo_data:
            self.pseudo_inputs = nn.Parameter(torch.empty(pseudo_data, in_features, **kw))
            self.pseudo_outputs = nn.Parameter(torch.empty(pseudo_data, out_features, **kw))
        else:
            self.register_parameter("pseudo_inputs", None)
            self.register_parameter("pseudo_outputs", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """M as ``torch.nn`` initialises ``nn.Linear``; every weight's and bias' std = ``posterior_std_init``;
        ``Z`` and ``T`` (drawn last) ``Uniform(-PSEUDO_INIT, PSEUDO_INIT)``."""
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.weight_mu, a=math.sqrt(5))
            self.log_u.fill_(math.log(self.posterior_std_init))
            self.log_v.fill_(math.log(self.posterior_std_init))
            if self.bias_mu is not None:
                bound = 1.0 / math.sqrt(self.in_features)
                nn.init.uniform_(self.bias_mu, -bound, bound)
                rho = softplus_inverse(torch.tensor(self.posterior_std_init, dtype=torch.float64)).item()
                self.bias_rho.fill_(rho)
            if self.pseudo_inputs is not None:
                nn.init.uniform_(self.pseudo_inputs, -PSEUDO_INIT, PSEUDO_INIT)
                nn.init.uniform_(self.pseudo_outputs, -PSEUDO_INIT, PSEUDO_INIT)

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
        """KL(q(W, b) || prior), closed form (0-dim, nats); with pseudo-data, that of the
        unconditioned MN(M, U, V), the paper's surrogate (see the module)."""
        p = self.prior
        kl = mvg_kl(self.weight_mu.T, self.log_u, self.log_v, p.loc_value, p.scale_value)
        if self.bias_mu is not None:
            kl = kl + kl_normal_to_prior(self.bias_mu, self.bias_std, p)
        return kl

    # ----------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """One draw of the pre-activations (or the posterior-mean output in "mean" mode)."""
        check_features_input(type(self).__name__, x, self.in_features)
        if self.sampling not in ("sample", "mean"):
            raise ValueError(f"{type(self).__name__}: sampling must be 'sample' or 'mean', got {self.sampling!r}")
        if self.pseudo_inputs is not None:
            mean, var = self.conditional_moments(x)
            if self.sampling == "mean":
                return mean
        else:
            mean = F.linear(x, self.weight_mu, self.bias_mu)
            if self.sampling == "mean":
                return mean
            var = ((x * x) @ self.U).unsqueeze(-1) * self.V  # (*, out)
        if self.bias_mu is not None:
            var = var + self.bias_std.square()
        else:  # an all-zero input row would give var = 0 and an infinite sqrt gradient
            var = var.clamp_min(torch.finfo(var.dtype).tiny)
        eps = torch.randn(mean.shape, generator=self.generator, dtype=mean.dtype, device=mean.device)
        return torch.addcmul(mean, var.sqrt(), eps)

    def conditional_moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (with the bias mean) and weight-part variance (without the bias variance) of the
        pre-activations given the pseudo-data, both ``(*, out)``, for ``x`` ``(*, in)``."""
        z, t, u = self.pseudo_inputs, self.pseudo_outputs, self.U
        xf = x.reshape(-1, self.in_features)  # (B, in)
        eye = torch.eye(self.pseudo_data, dtype=z.dtype, device=z.device)
        chol = torch.linalg.cholesky((z * u) @ z.T + PSEUDO_JITTER * eye)  # (P, P), S11 = L L^T
        a = torch.linalg.solve_triangular(chol, (z * u) @ xf.T, upper=False)  # (P, B): L^{-1} S12
        r = torch.linalg.solve_triangular(chol, t - F.linear(z, self.weight_mu), upper=False)  # (P, out)
        mean = torch.addmm(F.linear(xf, self.weight_mu, self.bias_mu), a.T, r)  # (B, out)
        s = ((xf * xf) @ u - a.square().sum(0)).clamp_min(0.0)  # (B,): S22 - diag(S12^T S11^-1 S12)
        var = s.unsqueeze(-1) * self.V  # (B, out)
        shape = (*x.shape[:-1], self.out_features)
        return mean.reshape(shape), var.reshape(shape)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias_mu is not None}, prior={self.prior!r}"
                + (f", pseudo_data={self.pseudo_data}" if self.pseudo_data else ""))
