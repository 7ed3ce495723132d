"""Containers for predictive distributions, shared by methods, metrics and plots.

They sit below both ``vbayes.methods`` and ``vbayes.metrics`` so that metrics never import
methods. Every method returns one of these for a batch of N test inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class RegressionPrediction:
    """A predictive that is an equal-weight mixture of S Gaussians per input.

    Attributes:
        mu: ``(S, N)`` component means, one row per posterior sample (S = 1 for point methods).
        sigma: ``(S, N)`` component standard deviations (aleatoric noise), all > 0.
        info: method diagnostics (e.g. ``rhat_max``, ``ess_min``, ``divergences`` for HMC).
    """

    mu: Tensor
    sigma: Tensor
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> Tensor:
        """``(N,)`` predictive mean."""
        return self.mu.mean(0)

    @property
    def aleatoric_var(self) -> Tensor:
        """``(N,)`` expected noise variance, E_s[sigma_s^2]."""
        return (self.sigma**2).mean(0)

    @property
    def epistemic_var(self) -> Tensor:
        """``(N,)`` variance of the component means across samples (0 when S = 1)."""
        if self.mu.shape[0] < 2:
            return torch.zeros_like(self.mu[0])
        return self.mu.var(0, unbiased=False)

    @property
    def total_var(self) -> Tensor:
        """``(N,)`` total predictive variance (law of total variance)."""
        return self.aleatoric_var + self.epistemic_var


@dataclass
class ClassificationPrediction:
    """Class probabilities per posterior sample.

    Attributes:
        probs: ``(S, N, C)`` probabilities, each row sums to 1.
        info: method diagnostics.
    """

    probs: Tensor
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> Tensor:
        """``(N, C)`` posterior predictive probabilities."""
        return self.probs.mean(0)
