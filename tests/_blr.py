"""Bayesian linear regression: the closed-form oracle of every inference method.

With ``hidden=()`` and a known noise level every method of :mod:`vbayes.methods` fits the model
``y = w . x + b + N(0, noise^2)`` whose prior (the one convention of all methods) is
``N(0, prior_std^2 / D)`` on each of ``w_1..w_D`` and on ``b``. The posterior is Gaussian with
precision ``A = X~^T X~ / noise^2 + (D / prior_std^2) I`` (``X~ = [X, 1]``) and mean
``A^-1 X~^T y / noise^2``; parameters are ordered ``w_1..w_D, b`` as in the methods' networks.
"""

from __future__ import annotations

from dataclasses import dataclass

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
