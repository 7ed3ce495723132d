"""Priors: parameter validation, closed-form KL against torch.distributions, scale-mixture MC KL."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

from vbayes.layers.priors import Normal, ScaleMixture, as_prior, kl_normal_to_prior


@pytest.mark.parametrize("kwargs, match", [
    ({"scale": 0.0}, "scale must be > 0"),
    ({"scale": -1.0}, "scale must be > 0"),
    ({"loc": float("nan")}, "loc must be finite"),
    ({"scale": float("inf")}, "scale must be finite"),
])
def test_normal_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Normal(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"pi": 0.0}, r"pi must be in \(0, 1\)"),
    ({"pi": 1.0}, r"pi must be in \(0, 1\)"),
    ({"sigma1": 0.0}, "sigma1 must be > 0"),
    ({"sigma2": -0.1}, "sigma2 must be > 0"),
    ({"sigma2": float("nan")}, "sigma2 must be finite"),
])
def test_scale_mixture_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScaleMixture(**kwargs)


def test_normal_is_a_torch_distribution_with_the_right_density():
    p = Normal(0.3, 2.0)
    x = torch.linspace(-3, 3, 7)
    expected = -0.5 * ((x - 0.3) / 2.0) ** 2 - math.log(2.0) - 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(p.log_prob(x), expected)


@pytest.mark.parametrize("loc, scale", [(0.0, 1.0), (0.5, 0.1), (-1.0, 3.0)])
def test_registered_kl_matches_torch_formula(loc, scale):
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(50, generator=g, dtype=torch.float64)
    sigma = torch.rand(50, generator=g, dtype=torch.float64) + 0.01
    q = D.Normal(mu, sigma)
    ours = D.kl_divergence(q, Normal(loc, scale))  # dispatches to the registered function
    reference = D.kl_divergence(q, D.Normal(torch.full_like(mu, loc), torch.full_like(mu, scale)))
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(kl_normal_to_prior(mu, sigma, Normal(loc, scale)), reference.sum())


def test_scale_mixture_log_prob_matches_mixture_same_family():
    p = ScaleMixture(0.25, 1.5, 0.01)
    ref = D.MixtureSameFamily(D.Categorical(torch.tensor([0.25, 0.75], dtype=torch.float64)),
                              D.Normal(torch.zeros(2, dtype=torch.float64),
                                       torch.tensor([1.5, 0.01], dtype=torch.float64)))
    x = torch.tensor([-2.0, -0.05, 0.0, 1e-3, 0.3, 4.0], dtype=torch.float64)
    torch.testing.assert_close(p.log_prob(x), ref.log_prob(x))


def test_scale_mixture_sample_variance():
    p = ScaleMixture(0.3, 2.0, 0.1)
    x = p.sample((200_000,), generator=torch.Generator().manual_seed(1)).double()
    var = 0.3 * 4.0 + 0.7 * 0.01
    # the SE of the sample variance is sqrt((m4 - var^2) / n); m4 = 3 (pi s1^4 + (1 - pi) s2^4)
    m4 = 3 * (0.3 * 16.0 + 0.7 * 1e-4)
    assert abs(x.var().item() - var) < 5 * math.sqrt((m4 - var**2) / x.numel())


def test_scale_mixture_mc_kl_is_unbiased():
    """Mean of many one-sample estimates == a high-sample estimate, within 5 standard errors."""
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(20, dtype=torch.float64, generator=g) * 0.3
    sigma = torch.rand(20, dtype=torch.float64, generator=g) * 0.2 + 0.05
    prior = ScaleMixture(0.5, 1.0, math.exp(-6))
    one_sample = torch.stack([kl_normal_to_prior(mu, sigma, prior, generator=g) for _ in range(400)])
    w = mu + sigma * torch.randn(100_000, 20, dtype=torch.float64, generator=g)
    reference = (D.Normal(mu, sigma).log_prob(w) - prior.log_prob(w)).mean(0).sum()
    se = one_sample.std() / math.sqrt(one_sample.numel())
    assert abs(one_sample.mean() - reference) < 5 * se + 1e-3
    # and it is not a constant: a wrong estimator that ignores the sample would fail here
    assert one_sample.std() > 0


def test_as_prior_validates():
    assert isinstance(as_prior(None), Normal)
    with pytest.raises(TypeError, match="LinearReparam: prior must be a torch.distributions"):
        as_prior(1.0, "LinearReparam")
    with pytest.raises(ValueError, match="scalar distribution"):
        as_prior(D.Normal(torch.zeros(3), torch.ones(3)), "LinearReparam")
