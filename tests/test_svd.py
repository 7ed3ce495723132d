"""Sparse variational dropout (vbayes.layers.svd): the KL approximations, LRT moments, pruning,
gradients and a short training run on scikit-learn's digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate
from torch import nn

import vbayes
from vbayes.layers import LinearSVD
from vbayes.layers.svd import kl_kingma, kl_molchanov

EULER_GAMMA_LOG2 = (np.euler_gamma + math.log(2.0)) / 2.0  # -E log|eps|, eps ~ N(0, 1)


def _true_kl(log_alpha: float) -> float:
    """KL(N(theta, alpha theta^2) || log-uniform) = E log|1/sqrt(alpha) + eps| + (gamma + log 2)/2,
    the constant chosen so that it tends to 0 as alpha -> inf (nats), by quadrature."""
    c = math.exp(-0.5 * log_alpha)

    def f(e: float) -> float:
        return math.log(abs(c + e)) * math.exp(-0.5 * e * e) / math.sqrt(2.0 * math.pi)

    pieces = [(-np.inf, -c), (-c, 0.0), (0.0, np.inf)]  # the log singularity at -c, the mass at 0
    return sum(integrate.quad(f, a, b, limit=200)[0] for a, b in pieces) + EULER_GAMMA_LOG2


LOG_ALPHAS = np.linspace(-4.0, 4.0, 33)
TRUE_KL = np.array([_true_kl(a) for a in LOG_ALPHAS])


def test_quadrature_has_the_right_limits():
    # small alpha: KL ~ -0.5 log alpha + (gamma + log 2)/2; large alpha: KL -> 0
    assert _true_kl(-12.0) == pytest.approx(6.0 + EULER_GAMMA_LOG2, abs=1e-3)
    assert abs(_true_kl(12.0)) < 1e-3


def test_molchanov_kl_matches_quadrature_to_1e_2_nats():
    approx = kl_molchanov(torch.tensor(LOG_ALPHAS, dtype=torch.float64)).numpy()
    # the paper's constant makes both tend to 0 as alpha -> inf: no constant to fit
    assert np.abs(approx - TRUE_KL).max() < 1.2e-2


def test_kingma_kl_matches_quadrature_up_to_a_constant_for_alpha_le_1():
    sel = LOG_ALPHAS <= 0.0
    approx = kl_kingma(torch.tensor(LOG_ALPHAS[sel], dtype=torch.float64)).numpy()
    diff = approx - TRUE_KL[sel]
    const = diff.mean()  # the additive constant, fitted once
    assert np.abs(diff - const).max() < 2.5e-2
    # and differences between alphas do not depend on the constant
    assert np.abs(np.diff(approx) - np.diff(TRUE_KL[sel])).max() < 2e-2


def test_layer_kl_is_the_sum_of_molchanov_terms_and_is_seen_by_vbayes():
    torch.manual_seed(0)
    layer = LinearSVD(5, 3)
    with torch.no_grad():
        layer.log_sigma2.uniform_(-6.0, 2.0)
    expected = kl_molchanov(layer.log_alpha).sum()
    torch.testing.assert_close(layer.kl_divergence(), expected)
    model = nn.Sequential(layer, nn.ReLU(), LinearSVD(3, 2))
    torch.testing.assert_close(vbayes.kl_divergence(model), expected + model[2].kl_divergence())
    assert layer.log_alpha.min() >= -10 and layer.log_alpha.max() <= 10


def test_sample_mode_moments_match_the_lrt():
    torch.manual_seed(1)
    layer = LinearSVD(6, 4).double()
    with torch.no_grad():
        layer.log_sigma2.uniform_(-3.0, 0.0)
    layer.generator = torch.Generator().manual_seed(2)
    x = torch.randn(1, 6, dtype=torch.float64)
    n = 40_000
    with torch.no_grad():
        draws = layer(x.expand(n, 6))  # (n, 4), independent draws per row
    mean = F.linear(x, layer.theta, layer.bias)[0]
    var = F.linear(x * x, layer.log_sigma2.exp())[0]
    se_mean = (var / n).sqrt()
    assert ((draws.mean(0) - mean).abs() < 5 * se_mean).all()
    se_var = var * math.sqrt(2.0 / (n - 1))  # sd of the sample variance of a normal
    assert ((draws.var(0) - var).abs() < 5 * se_var).all()


def test_pruned_weights_contribute_exactly_zero_in_mean_mode():
    torch.manual_seed(3)
    layer = LinearSVD(5, 3)
    with torch.no_grad():
        layer.log_sigma2.fill_(-12.0)
        layer.log_sigma2[:, 1] = 20.0  # input feature 1: log_alpha = 10 > 3 everywhere
        layer.log_sigma2[0, 3] = 20.0  # and one more weight
    assert layer.prune_threshold == 3.0
    mask = layer.weight_mask
    assert int((~mask).sum()) == 4
    assert layer.kept_fraction == pytest.approx(11 / 15)
    layer.sampling = "mean"
    x = torch.randn(7, 5)
    y = layer(x)
    torch.testing.assert_close(y, F.linear(x, layer.theta * mask, layer.bias))
    x2 = x.clone()
    x2[:, 1] = 1e6 * torch.randn(7)
    assert torch.equal(layer(x2), y)  # feature 1 has no path to the output at all
    with vbayes.sampling_mode(layer, "sample"):
        assert not torch.equal(layer(x2), layer(x))  # sample mode does not prune


def test_gradcheck_sample_forward_and_kl_float64():
    torch.manual_seed(4)
    layer = LinearSVD(4, 3).double()
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    theta = layer.theta.detach().clone().requires_grad_(True)
    log_s2 = torch.empty_like(theta).uniform_(-3.0, 0.0).requires_grad_(True)
    bias = layer.bias.detach().clone().requires_grad_(True)

    def forward(x, theta, log_s2, bias):
        layer.generator = torch.Generator().manual_seed(5)  # the same noise on every call
        params = {"theta": theta, "log_sigma2": log_s2, "bias": bias}
        return torch.func.functional_call(layer, params, (x,))

    assert torch.autograd.gradcheck(forward, (x, theta, log_s2, bias))
    def kl(theta, log_s2):
        return kl_molchanov(torch.clamp(log_s2 - torch.log(theta * theta + 1e-8), -10, 10)).sum()

    assert torch.autograd.gradcheck(kl, (theta, log_s2))


def test_short_digits_training_is_accurate_and_prunes():
    torch.manual_seed(0)
    data = vbayes.data.load("digits")
    x, y = data.x_train.flatten(1), data.y_train
    xt, yt = data.x_test.flatten(1), data.y_test
    model = nn.Sequential(LinearSVD(64, 100), nn.ReLU(), LinearSVD(100, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    n = x.shape[0]
    for epoch in range(60):
        perm = torch.randperm(n)
        kl_weight = min(1.0, epoch / 20)
        for i in range(0, n, 100):
            idx = perm[i:i + 100]
            loss = F.cross_entropy(model(x[idx]), y[idx]) + kl_weight * vbayes.kl_divergence(model) / n
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad(), vbayes.sampling_mode(model, "mean"):
        acc = (model(xt).argmax(-1) == yt).float().mean().item()
    kept = [model[0].kept_fraction, model[2].kept_fraction]
    print(f"digits: test accuracy {acc:.3f}, kept fractions {kept}")
    assert acc > 0.85
    assert min(kept) < 1.0
