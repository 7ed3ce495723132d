"""Bayesian linear regression: the closed-form oracle of every inference method.

With ``hidden=()`` and a known noise level every method of :mod:`vbayes.methods` fits the model
``y = w . x + b + N(0, noise^2)`` whose prior (the one convention of all methods) is
``N(0, prior_std^2 / D)`` on each of ``w_1..w_D`` and on ``b``. The posterior is Gaussian with
precision ``A = X~^T X~ / noise^2 + (D / prior_std^2) I`` (``X~ = [X, 1]``) and mean
``A^-1 X~^T y / noise^2``; parameters are ordered ``w_1..w_D, b`` as in the methods' networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class BLR:
    """A small regression problem and its exact posterior (float64)."""

    x: Tensor  # (N, D) float32
    y: Tensor  # (N,) float32
    noise: float
    prior_std: float
    mean: Tensor  # (D + 1,)
    cov: Tensor  # (D + 1, D + 1)
    precision: Tensor  # (D + 1, D + 1)

    @property
    def design(self) -> Tensor:
        """``X~ = [X, 1]`` in float64, ``(N, D + 1)``."""
        return torch.cat([self.x, torch.ones(self.x.shape[0], 1)], 1).double()

    @property
    def mean_field_var(self) -> Tensor:
        """Variances of the optimal mean-field Gaussian, ``1 / diag(A)``, ``(D + 1,)``."""
        return 1.0 / torch.diagonal(self.precision)

    @property
    def mean_field_elbo(self) -> float:
        """ELBO per point at the mean-field optimum: ``mean_n E_q log p(y_n | w) - KL(q || p) / N``."""
        x = self.design
        resid = self.y.double() - x @ self.mean
        exp_loglik = -0.5 * math.log(2 * math.pi * self.noise**2) - (
            resid**2 + (x**2) @ self.mean_field_var) / (2 * self.noise**2)
        prior_var = self.prior_std**2 / self.x.shape[1]
        ratio = self.mean_field_var / prior_var
        kl = 0.5 * (ratio + self.mean**2 / prior_var - 1 - torch.log(ratio))
        return float(exp_loglik.mean() - kl.sum() / x.shape[0])


def layer_mean_sd(layer: Any) -> tuple[Tensor, Tensor]:
    """Posterior means and sds of a one-output Bayesian layer, ordered ``w_1..w_D, b`` (float64)."""
    mu = torch.cat([layer.weight_mu.detach().reshape(-1), layer.bias_mu.detach()]).double()
    sd = torch.cat([layer.weight_std.detach().reshape(-1), layer.bias_std.detach()]).double()
    return mu, sd


def assert_mean_field_optimum(method: Any, problem: "BLR") -> None:
    """The fitted variational method (``hidden=()``) sits at the mean-field optimum of ``problem``:
    means within 0.2 sd of the posterior mean, sds within 8% of ``1 / sqrt(diag(precision))``
    (optimiser noise measured at ~0.05 sd and ~2%), and its ELBO estimate at the exact one."""
    mu, sd = layer_mean_sd(method.model[0])
    target_sd = problem.mean_field_var.sqrt()
    assert ((mu - problem.mean).abs() / target_sd).max() < 0.2
    torch.testing.assert_close(sd, target_sd, rtol=0.08, atol=0)
    assert abs(method.info["elbo"] - problem.mean_field_elbo) < 0.02 + 4 * method.info["elbo_se"]


def blr_problem(n: int = 20, d: int = 2, noise: float = 0.5, prior_std: float = 0.5, seed: int = 1) -> BLR:
    """Data from ``y = 0.7 x_1 - 0.3 x_2 + 0.2 + noise`` and the exact posterior."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    w = torch.tensor([0.7, -0.3, 0.5, 0.1][:d])
    y = x @ w + 0.2 + noise * torch.randn(n, generator=gen)
    design = torch.cat([x, torch.ones(n, 1)], 1).double()
    precision = design.T @ design / noise**2 + torch.eye(d + 1, dtype=torch.float64) * d / prior_std**2
    cov = torch.linalg.inv(precision)
    mean = cov @ design.T @ y.double() / noise**2
    return BLR(x, y, noise, prior_std, mean, cov, precision)
