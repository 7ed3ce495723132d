"""Likelihoods, KL, warm-up schedule and chunked logsumexp against independent references."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from vbayes.losses import (
    bernoulli_log_likelihood,
    diag_gaussian_log_prob,
    gaussian_log_likelihood,
    importance_weighted_log_likelihood,
    kl_weight,
    log_mean_exp,
    negative_elbo,
    standard_normal_kl,
)


def test_bernoulli_matches_torch_distribution():
    torch.manual_seed(0)
    logits = torch.randn(5, 1, 4, 4) * 3
    x = torch.bernoulli(torch.full_like(logits, 0.4))
    ref = Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), ref)


def test_bernoulli_is_stable_for_extreme_logits():
    logits = torch.tensor([[200.0, -200.0, 200.0]])
    x = torch.tensor([[1.0, 0.0, 0.0]])
    value = bernoulli_log_likelihood(logits, x)
    torch.testing.assert_close(value, torch.tensor([-200.0]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("std", [0.3, "tensor"])
def test_gaussian_matches_torch_distribution(std):
    torch.manual_seed(1)
    mean, x = torch.rand(4, 1, 3, 3), torch.rand(4, 1, 3, 3)
    s = torch.rand(1, 1, 3, 3) + 0.1 if std == "tensor" else std
    ref = Normal(mean, s).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_log_likelihood(mean, x, s), ref)


def test_likelihood_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        bernoulli_log_likelihood(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="differ"):
        gaussian_log_likelihood(torch.zeros(2, 3), torch.zeros(3, 3), 1.0)


def test_diag_gaussian_log_prob_matches_independent_normal():
    torch.manual_seed(2)
    z, mu, logvar = torch.randn(3, 5, 2), torch.randn(5, 2), torch.randn(5, 2)
    ref = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z)
    torch.testing.assert_close(diag_gaussian_log_prob(z, mu, logvar), ref)


def test_analytic_kl_matches_torch_and_monte_carlo():
    torch.manual_seed(3)
    mu, logvar = torch.randn(1, 3), torch.randn(1, 3) * 0.5
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros(1, 3), torch.ones(1, 3)), 1)
    torch.testing.assert_close(standard_normal_kl(mu, logvar), kl_divergence(q, p))
    n = 100_000
    z = q.sample((n,))
    diff = q.log_prob(z) - p.log_prob(z)  # (n, 1)
    mc, se = diff.mean(), diff.std() / math.sqrt(n)
    assert abs(mc - standard_normal_kl(mu, logvar)[0]) < 5 * se


def test_negative_elbo_weights_the_kl():
    ll, kl = torch.tensor([-10.0, -20.0]), torch.tensor([3.0, 4.0])
    torch.testing.assert_close(negative_elbo(ll, kl), torch.tensor([13.0, 24.0]))
    torch.testing.assert_close(negative_elbo(ll, kl, 0.5), torch.tensor([11.5, 22.0]))


def test_kl_weight_linear_warmup():
    assert kl_weight(0, 0) == 1.0
    assert kl_weight(5, 0, beta=2.0) == 2.0
    assert kl_weight(0, 10) == pytest.approx(0.1)
    assert kl_weight(4, 10, beta=0.5) == pytest.approx(0.25)
    assert kl_weight(9, 10) == 1.0 and kl_weight(1000, 10) == 1.0
    weights = [kl_weight(s, 7) for s in range(10)]
    assert weights == sorted(weights)
    with pytest.raises(ValueError, match="beta"):
        kl_weight(0, 1, beta=-1.0)


def test_log_mean_exp_is_stable():
    v = torch.tensor([[1.0, 2.0], [3.0, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(log_mean_exp(v, 0), torch.log(torch.exp(v).mean(0)))
    big = torch.tensor([1000.0, 1000.0 + math.log(3.0)], dtype=torch.float64)
    torch.testing.assert_close(log_mean_exp(big), torch.tensor(1000.0 + math.log(2.0), dtype=torch.float64))


@pytest.mark.parametrize("chunk", [1, 7, 50, 1000])
def test_iw_estimate_does_not_depend_on_chunk(chunk):
    gen = torch.Generator().manual_seed(4)
    table = torch.randn(50, 3, generator=gen, dtype=torch.float64) * 5 - 300  # (K, B) log-weights
    pos = [0]

    def log_weights(n):
        out = table[pos[0] : pos[0] + n]
        pos[0] += n
        return out

    got = importance_weighted_log_likelihood(log_weights, 50, chunk)
    torch.testing.assert_close(got, log_mean_exp(table, 0))
    assert pos[0] == 50


def test_iw_estimate_checks_its_inputs():
    with pytest.raises(ValueError, match="k and chunk"):
        importance_weighted_log_likelihood(lambda n: torch.zeros(n, 1), 0)
    with pytest.raises(ValueError, match="shape"):
        importance_weighted_log_likelihood(lambda n: torch.zeros(n), 3)
