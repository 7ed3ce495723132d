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
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["KL_MODES", "nn_kl_estimate"]

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


def nn_kl_estimate(samples: Tensor, prior_samples: Tensor, mode: str = "weight") -> Tensor:
    """Nearest-neighbour estimate of KL(q || p) in nats (a 0-dim tensor, differentiable in both).

    Args:
        samples: ``(n, D)`` draws from q (``n >= 2``), e.g. ``n`` weight vectors of a layer.
        prior_samples: ``(m, D)`` draws from p (``m >= 1``).
        mode: ``"weight"`` (sum over the ``D`` coordinates of the 1-D estimate) or
            ``"kernel"`` (one ``D``-dimensional estimate); see the module docstring.
    """
    if mode not in KL_MODES:
        raise ValueError(f"nn_kl_estimate: mode must be one of {KL_MODES}, got {mode!r}")
    if samples.dim() != 2 or prior_samples.dim() != 2 or samples.shape[1] != prior_samples.shape[1]:
        raise ValueError(f"nn_kl_estimate: expected samples (n, D) and prior_samples (m, D), got "
                         f"{tuple(samples.shape)} and {tuple(prior_samples.shape)}")
    n, d = samples.shape
    m = prior_samples.shape[0]
    if n < 2 or m < 1:
        raise ValueError(f"nn_kl_estimate: needs n >= 2 draws of q and m >= 1 of p, got n={n}, m={m}")
    correction = math.log(m / (n - 1))
    if mode == "weight":
        rho = _min_dist_1d(samples, samples, exclude_self=True).clamp_min(_TINY)
        nu = _min_dist_1d(samples, prior_samples, exclude_self=False).clamp_min(_TINY)
        return (nu.log() - rho.log()).mean(0).sum() + d * correction
    rho = _min_dist_full(samples, samples, exclude_self=True)
    nu = _min_dist_full(samples, prior_samples, exclude_self=False)
    return d * (nu.log() - rho.log()).mean() + correction
