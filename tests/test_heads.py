"""GaussianHead and StochasticGaussian: distributions, KL against torch.distributions, MC moments."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

import vbayes
from vbayes.layers.heads import GaussianHead, StochasticGaussian, standard_normal_kl


def test_gaussian_head_returns_normal_with_softplus_scale():
    torch.manual_seed(0)
    head = GaussianHead(5, 3, min_std=0.01)
    h = torch.randn(7, 5)
    dist = head(h)
    assert isinstance(dist, Normal)
    assert dist.loc.shape == (7, 3) and dist.scale.shape == (7, 3)
    raw = h @ head.linear.weight.T + head.linear.bias
    torch.testing.assert_close(dist.loc, raw[:, :3])
    torch.testing.assert_close(dist.scale, F.softplus(raw[:, 3:]) + 0.01)


def test_gaussian_head_floor_and_gradients():
    head = GaussianHead(2, 1, min_std=1e-3)
    with torch.no_grad():
        head.linear.bias[1] = -200.0  # softplus underflows to 0: the floor must hold
        head.linear.weight.zero_()
    dist = head(torch.zeros(4, 2))
    assert torch.all(dist.scale >= 1e-3)
    head2 = GaussianHead(2)
    loss = -head2(torch.randn(8, 2)).log_prob(torch.randn(8, 1)).mean()
    loss.backward()
    assert head2.linear.weight.grad is not None and torch.isfinite(head2.linear.weight.grad).all()


def test_gaussian_head_rejects_bad_sizes():
    with pytest.raises(ValueError, match="GaussianHead"):
        GaussianHead(0, 1)
    with pytest.raises(ValueError, match="min_std"):
        GaussianHead(2, 1, min_std=-1.0)


def test_standard_normal_kl_matches_torch_distributions():
    torch.manual_seed(1)
    mu, logvar = torch.randn(6, 4) * 2, torch.randn(6, 4)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(standard_normal_kl(mu, logvar), ref)


def test_stochastic_gaussian_kl_is_that_of_last_forward():
    torch.manual_seed(2)
    layer = StochasticGaussian(5, 3)
    h = torch.randn(10, 5)
    z = layer(h)
    assert z.shape == (10, 3)
    mu, logvar = layer.params(h)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum()
    torch.testing.assert_close(layer.kl_divergence(), ref)
    # the model-level sum sees it as a BayesianModule
    model = torch.nn.Sequential(torch.nn.Identity(), layer)
    torch.testing.assert_close(vbayes.kl_divergence(model), ref)
    layer(h[:2])
    assert layer.last_kl is not None and layer.last_kl.shape == (2,)


def test_stochastic_gaussian_sample_moments():
    n = 40_000
    mu = torch.tensor([[1.5, -2.0]]).expand(n, 2)
    logvar = torch.tensor([[math.log(0.25), math.log(4.0)]]).expand(n, 2)
    layer = StochasticGaussian(None, 2)
    z = layer(mu=mu, logvar=logvar, generator=torch.Generator().manual_seed(3))
    var = torch.tensor([0.25, 4.0])
    se_mean = torch.sqrt(var / n)
    se_var = var * math.sqrt(2.0 / (n - 1))
    assert torch.all((z.mean(0) - mu[0]).abs() < 5 * se_mean)
    assert torch.all((z.var(0) - var).abs() < 5 * se_var)


def test_stochastic_gaussian_repeatable_and_deterministic_mode():
    layer = StochasticGaussian(None, 3)
    mu, logvar = torch.randn(4, 3), torch.zeros(4, 3)
    a = layer(mu=mu, logvar=logvar, generator=torch.Generator().manual_seed(7))
    b = layer(mu=mu, logvar=logvar, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert torch.equal(layer(mu=mu, logvar=logvar, sample=False), mu)


def test_stochastic_gaussian_gradients_flow_through_sample():
    layer = StochasticGaussian(4, 2)
    z = layer(torch.randn(3, 4))
    (z.sum() + layer.kl_divergence()).backward()
    assert layer.proj is not None and layer.proj.weight.grad is not None
    assert torch.all(layer.proj.weight.grad.abs().sum(1) > 0)  # both mu and logvar rows get gradient


def test_stochastic_gaussian_errors():
    with pytest.raises(ValueError, match="latent"):
        StochasticGaussian(3, 0)
    layer = StochasticGaussian(None, 2)
    with pytest.raises(RuntimeError, match="before any forward"):
        layer.kl_divergence()
    with pytest.raises(ValueError, match="in_features=None"):
        layer(torch.randn(2, 3))
    with pytest.raises(ValueError, match="needs features"):
        layer(mu=torch.zeros(2, 2))
