"""The nearest-neighbour KL estimator of Bayes by Hypernet (Pawlowski et al. 2017).

For ``n`` draws ``x_1..x_n`` from q and ``m`` draws ``y_1..y_m`` from p, both in ``R^d``, the
1-nearest-neighbour estimator of Wang, Kulkarni & Verdu (2009) (after Kozachenko & Leonenko 1987
and Perez-Cruz 2008) is

    KL(q || p) ~= (d / n) sum_i log(nu_i / rho_i) + log(m / (n - 1)),

with ``rho_i`` the distance from ``x_i`` to its nearest neighbour among the other ``x`` and
``nu_i`` the distance to its nearest ``y``. It is consistent as ``n, m -> inf``; at the paper's
``n = m = 5`` it is a rough, high-variance estimate (see ``tests/test_bbh.py`` for its measured
behaviour). Two ways to apply it to a layer's ``D`` weights (:data:`KL_MODES`):

* ``"weight"``: the 1-D estimator on every weight separately, summed over the ``D`` weights.
  This estimates the sum of the marginal KLs, ``sum_j KL(q(w_j) || p(w_j))``; for a factorised
  prior that is the joint KL minus q's total correlation, so it never sees the dependence between
  weights (a hypernet's q lives on a ``noise_dim``-dimensional manifold of ``R^D``, where the
  joint KL is infinite).
* ``"kernel"``: one ``D``-dimensional estimate over the layer's whole flattened kernel and bias.
  Its leading factor ``D`` multiplies the noise of ``n = 5`` draws.

The paper's code (``experiments.run_klapprox_experiment``) adds ``log(m / (n - 1))`` inside the
mean that the ``kernel`` form multiplies by ``D``; here it is added once, as in Wang et al.

Its gradient is the weak point (measured in ``tests/test_bbh.py``): the prior draws do not move
with q, so ``d log nu_i / d x_i = 1 / (x_i - y)`` has no finite variance (a prior draw can fall
arbitrarily close to ``x_i``), and the pull of the 5-draw estimate on q's mean is noise larger
than its signal. :func:`nn_entropy_kl_estimate` is the variant that keeps the nearest neighbours
for q's entropy only,

    KL(q || p) = E_q[-log p(x)] - H(q) ~= -(1/n) sum_i log p(x_i) - H_KL,
    H_KL = (d / n) sum_i log rho_i + log V_d + psi(n) - psi(1)   (Kozachenko & Leonenko 1987),

``V_d`` the volume of the unit d-ball (2 in 1-D): the prior's log density is exact at each
draw, and the distances ``rho_i`` between draws of q move with q (the gradient of ``log rho`` for a
location-scale q is exactly ``1 / scale``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["KL_MODES", "nn_kl_estimate", "nn_entropy_kl_estimate"]

KL_MODES = ("weight", "kernel")
_TINY = 1e-30
"""Floor on a nearest-neighbour distance (two identical draws would give log 0)."""


def _min_dist_1d(a: Tensor, b: Tensor, exclude_self: bool) -> Tensor:
    """Per coordinate, the distance from each row of ``a`` ``(n, D)`` to its nearest row of ``b``
    ``(m, D)``: ``(n, D)``. With ``exclude_self`` (``b is a``) the row itself is skipped."""
    dist = (a.unsqueeze(1) - b.unsqueeze(0)).abs()  # (n, m, D)
    if exclude_self:
        eye = torch.eye(a.shape[0], dtype=torch.bool, device=a.device).unsqueeze(-1)
        dist = dist.masked_fill(eye, math.inf)
    return dist.min(dim=1).values


def _min_dist_full(a: Tensor, b: Tensor, exclude_self: bool) -> Tensor:
    """Euclidean distance from each row of ``a`` ``(n, D)`` to its nearest row of ``b`` ``(m, D)``: ``(n,)``."""
    sq = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)  # (n, m)
    if exclude_self:
        sq = sq.masked_fill(torch.eye(a.shape[0], dtype=torch.bool, device=a.device), math.inf)
    return sq.min(dim=1).values.clamp_min(_TINY).sqrt()


def _check(samples: Tensor, mode: str, owner: str) -> None:
    if mode not in KL_MODES:
        raise ValueError(f"{owner}: mode must be one of {KL_MODES}, got {mode!r}")
    if samples.dim() != 2 or samples.shape[0] < 2:
        raise ValueError(f"{owner}: expected samples (n, D) with n >= 2, got {tuple(samples.shape)}")


def nn_kl_estimate(samples: Tensor, prior_samples: Tensor, mode: str = "weight") -> Tensor:
    """Nearest-neighbour estimate of KL(q || p) in nats (a 0-dim tensor, differentiable in both).

    Args:
        samples: ``(n, D)`` draws from q (``n >= 2``), e.g. ``n`` weight vectors of a layer.
        prior_samples: ``(m, D)`` draws from p (``m >= 1``).
        mode: ``"weight"`` (sum over the ``D`` coordinates of the 1-D estimate) or
            ``"kernel"`` (one ``D``-dimensional estimate); see the module docstring.
    """
    _check(samples, mode, "nn_kl_estimate")
    if prior_samples.dim() != 2 or prior_samples.shape[0] < 1 or samples.shape[1] != prior_samples.shape[1]:
        raise ValueError(f"nn_kl_estimate: expected prior_samples (m, {samples.shape[1]}) with m >= 1, got "
                         f"{tuple(prior_samples.shape)}")
    n, d = samples.shape
    m = prior_samples.shape[0]
    correction = math.log(m / (n - 1))
    if mode == "weight":
        rho = _min_dist_1d(samples, samples, exclude_self=True).clamp_min(_TINY)
        nu = _min_dist_1d(samples, prior_samples, exclude_self=False).clamp_min(_TINY)
        return (nu.log() - rho.log()).mean(0).sum() + d * correction
    rho = _min_dist_full(samples, samples, exclude_self=True)
    nu = _min_dist_full(samples, prior_samples, exclude_self=False)
    return d * (nu.log() - rho.log()).mean() + correction


def nn_entropy(samples: Tensor, mode: str = "weight") -> Tensor:
    """Kozachenko-Leonenko 1-NN estimate of the entropy H(q) of ``samples`` ``(n, D)``, nats (0-dim):
    summed over the ``D`` 1-D marginal entropies (``"weight"``) or one ``D``-dimensional entropy
    (``"kernel"``)."""
    _check(samples, mode, "nn_entropy")
    n, d = samples.shape
    digamma = torch.special.digamma(torch.tensor(float(n), dtype=torch.float64)).item() + 0.5772156649015329
    if mode == "weight":
        rho = _min_dist_1d(samples, samples, exclude_self=True).clamp_min(_TINY)
        return rho.log().mean(0).sum() + d * (math.log(2.0) + digamma)
    log_unit_ball = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)
    rho = _min_dist_full(samples, samples, exclude_self=True)
    return d * rho.log().mean() + log_unit_ball + digamma


def nn_entropy_kl_estimate(samples: Tensor, log_prior: Tensor, mode: str = "weight") -> Tensor:
    """KL(q || p) ~= -mean_i log p(x_i) - H_KL(q) (see the module), nats (0-dim).

    Args:
        samples: ``(n, D)`` draws from q (``n >= 2``).
        log_prior: ``(n, D)`` the prior's log density at each coordinate of each draw (a
            factorised prior), or ``(n,)`` its joint log density at each draw.
        mode: ``"weight"`` (marginal entropies, i.e. the sum of the marginal KLs) or ``"kernel"``.
    """
    _check(samples, mode, "nn_entropy_kl_estimate")
    if log_prior.shape not in (samples.shape, samples.shape[:1]):
        raise ValueError(f"nn_entropy_kl_estimate: log_prior must have shape {tuple(samples.shape)} or "
                         f"({samples.shape[0]},), got {tuple(log_prior.shape)}")
    cross_entropy = -log_prior.reshape(samples.shape[0], -1).sum(1).mean()
    return cross_entropy - nn_entropy(samples, mode)
