"""Weight priors of Bayesian layers: ``Normal`` and the scale mixture of Blundell et al. (2015).

Both are ``torch.distributions.Distribution`` objects with scalar parameters that broadcast over
a weight tensor of any shape. The KL divergence of a mean-field Gaussian posterior to a
:class:`Normal` prior is closed form and registered with ``torch.distributions.kl.register_kl``;
to a :class:`ScaleMixture` it has no closed form and :func:`kl_normal_to_prior` estimates it by
Monte Carlo from a posterior sample (the estimator of Blundell et al.).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch import distributions as D
from torch.distributions.kl import register_kl

__all__ = ["Normal", "ScaleMixture", "Prior", "kl_normal_to_prior", "as_prior"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _finite_float(name: str, value: float, owner: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{owner}: {name} must be finite, got {out}")
    return out


class Normal(D.Normal):
    """Isotropic Gaussian prior N(loc, scale^2) on every weight.

    Args:
        loc: prior mean (a finite float).
        scale: prior standard deviation (a finite float > 0).

    Raises:
        ValueError: when ``scale <= 0`` or a parameter is not finite.
    """

    def __init__(self, loc: float = 0.0, scale: float = 1.0) -> None:
        self.loc_value = _finite_float("loc", loc, "priors.Normal")
        self.scale_value = _finite_float("scale", scale, "priors.Normal")
        if self.scale_value <= 0:
            raise ValueError(f"priors.Normal: scale must be > 0, got {self.scale_value}")
        super().__init__(torch.tensor(self.loc_value), torch.tensor(self.scale_value), validate_args=False)

    def __repr__(self) -> str:
        return f"Normal(loc={self.loc_value:g}, scale={self.scale_value:g})"


class ScaleMixture(D.Distribution):
    """Scale-mixture prior pi * N(0, sigma1^2) + (1 - pi) * N(0, sigma2^2) (Blundell et al. 2015).

    Args:
        pi: weight of the first component, in (0, 1).
        sigma1: standard deviation of the first (usually wide) component, > 0.
        sigma2: standard deviation of the second (usually narrow) component, > 0.

    Raises:
        ValueError: when ``pi`` is not in (0, 1) or a sigma is not a finite number > 0.
    """

    arg_constraints: dict = {}
    support = D.constraints.real
    has_rsample = False

    def __init__(self, pi: float = 0.5, sigma1: float = 1.0, sigma2: float = math.exp(-6.0)) -> None:
        self.pi = _finite_float("pi", pi, "priors.ScaleMixture")
        self.sigma1 = _finite_float("sigma1", sigma1, "priors.ScaleMixture")
        self.sigma2 = _finite_float("sigma2", sigma2, "priors.ScaleMixture")
        if not 0.0 < self.pi < 1.0:
            raise ValueError(f"priors.ScaleMixture: pi must be in (0, 1), got {self.pi}")
        for name, value in (("sigma1", self.sigma1), ("sigma2", self.sigma2)):
            if value <= 0:
                raise ValueError(f"priors.ScaleMixture: {name} must be > 0, got {value}")
        super().__init__(batch_shape=torch.Size(), validate_args=False)

    @property
    def mean(self) -> Tensor:
        return torch.tensor(0.0)

    @property
    def variance(self) -> Tensor:
        return torch.tensor(self.pi * self.sigma1**2 + (1 - self.pi) * self.sigma2**2)

    def log_prob(self, value: Tensor) -> Tensor:
        """Elementwise log density (nats) of ``value``, any shape."""
        v2 = value * value
        lp1 = math.log(self.pi) - math.log(self.sigma1) - _LOG_SQRT_2PI - v2 / (2 * self.sigma1**2)
        lp2 = math.log1p(-self.pi) - math.log(self.sigma2) - _LOG_SQRT_2PI - v2 / (2 * self.sigma2**2)
        return torch.logaddexp(lp1, lp2)

    def sample(self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None) -> Tensor:
        """Draws of shape ``sample_shape`` (float32, CPU)."""
        shape = torch.Size(sample_shape)
        first = torch.rand(shape, generator=generator) < self.pi
        eps = torch.randn(shape, generator=generator)
        return eps * torch.where(first, torch.tensor(self.sigma1), torch.tensor(self.sigma2))

    def __repr__(self) -> str:
        return f"ScaleMixture(pi={self.pi:g}, sigma1={self.sigma1:g}, sigma2={self.sigma2:g})"


Prior = D.Distribution


@register_kl(D.Normal, Normal)
def _kl_normal_vbayes_normal(q: D.Normal, p: Normal) -> Tensor:
    """Closed-form KL(N(mu, s^2) || N(m, t^2)), elementwise (nats)."""
    var_ratio = (q.scale / p.scale_value) ** 2
    t1 = ((q.loc - p.loc_value) / p.scale_value) ** 2
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


@register_kl(Normal, Normal)
def _kl_vbayes_normal_normal(q: Normal, p: Normal) -> Tensor:
    return _kl_normal_vbayes_normal(q, p)


def as_prior(prior: D.Distribution | None, owner: str = "layer") -> D.Distribution:
    """``prior`` checked to be a scalar ``torch.distributions.Distribution``; ``None`` -> N(0, 1)."""
    if prior is None:
        return Normal(0.0, 1.0)
    if not isinstance(prior, D.Distribution):
        raise TypeError(f"{owner}: prior must be a torch.distributions.Distribution such as "
                        f"vbayes.layers.priors.Normal, got {type(prior).__name__}")
    if prior.batch_shape != torch.Size() or prior.event_shape != torch.Size():
        raise ValueError(f"{owner}: prior must be a scalar distribution that broadcasts over the "
                         f"weights, got batch_shape {tuple(prior.batch_shape)}")
    return prior


def kl_normal_to_prior(mu: Tensor, sigma: Tensor, prior: D.Distribution, sample: Tensor | None = None,
                       generator: torch.Generator | None = None) -> Tensor:
    """KL(N(mu, sigma^2) || prior) summed over all elements (scalar, nats).

    Closed form when ``torch.distributions`` knows one for the pair; otherwise the one-sample
    Monte-Carlo estimate ``log q(w) - log p(w)`` at ``sample`` (same shape as ``mu``; drawn
    here when ``None``). The estimate is unbiased and differentiable in ``mu`` and ``sigma``.
    """
    q = D.Normal(mu, sigma, validate_args=False)
    try:
        return D.kl_divergence(q, prior).sum()
    except NotImplementedError:
        pass
    if sample is None:
        sample = mu + sigma * torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return (q.log_prob(sample) - prior.log_prob(sample)).sum()
