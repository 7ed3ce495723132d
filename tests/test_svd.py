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
    alpha = (layer.log_sigma2 - torch.log(layer.theta**2 + 1e-8)).clamp(-10, 10).exp()
    var = F.linear(x * x, alpha * layer.theta**2)[0]
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


# ----------------------------------------------------------------- Conv2dSVD


def _explicit_conv_draws(layer, x, n, gen):
    """``n`` outputs of ``layer`` at ``x`` ``(1, C, H, W)`` from explicit weight draws
    ``w = theta + sqrt(alpha) |theta| eps`` (one whole kernel per draw): ``(n, C_out, H', W')``."""
    std = (layer.log_sigma2 - torch.log(layer.theta**2 + 1e-8)).clamp(-10, 10).mul(0.5).exp() * layer.theta.abs()
    outs = []
    for _ in range(n // 500):
        w = layer.theta + std * torch.randn((500, *layer.theta.shape), generator=gen, dtype=x.dtype)
        # the 500 kernels as one grouped convolution over 500 copies of x
        big = w.flatten(0, 1)  # (500 * C_out, C_in / groups, kH, kW)
        xs = x.repeat(1, 500, 1, 1)  # (1, 500 * C_in, H, W)
        out = F.conv2d(xs, big, layer.bias.repeat(500), layer.stride, layer.padding, layer.dilation,
                       layer.groups * 500)
        outs.append(out.view(500, layer.out_channels, *out.shape[-2:]))
    return torch.cat(outs)


@pytest.mark.parametrize("kw", [dict(stride=1, padding=1), dict(stride=2, padding=0, groups=2, dilation=2)])
def test_conv_sample_moments_match_explicit_weight_draws(kw):
    torch.manual_seed(6)
    layer = vbayes.layers.Conv2dSVD(4, 6, 3, **kw).double()
    with torch.no_grad():
        layer.log_sigma2.uniform_(-5.0, -1.0)
    x = torch.randn(1, 4, 7, 7, dtype=torch.float64)
    n = 20_000
    layer.generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        lrt = layer(x.expand(n, 4, 7, 7))  # (n, 6, H', W'): independent draws per example
        explicit = _explicit_conv_draws(layer, x, n, torch.Generator().manual_seed(8))
    assert lrt.shape == explicit.shape
    var = explicit.var(0)
    se_mean = (2 * var / n).sqrt()  # the difference of two independent means
    assert ((lrt.mean(0) - explicit.mean(0)).abs() < 5 * se_mean).all()
    se_var = var * math.sqrt(2.0 * 2.0 / (n - 1))  # the difference of two sample variances
    assert ((lrt.var(0) - var).abs() < 5 * se_var).all()
    assert var.max() > 1e-3  # the noise is large enough for the check to mean something


def test_conv_mean_mode_prunes_and_otherwise_equals_conv2d():
    torch.manual_seed(9)
    layer = vbayes.layers.Conv2dSVD(3, 5, (3, 5), padding="same")
    dense = nn.Conv2d(3, 5, (3, 5), padding="same")
    with torch.no_grad():
        dense.weight.copy_(layer.theta)
        dense.bias.copy_(layer.bias)
        layer.log_sigma2.fill_(-30.0)
    layer.sampling = "mean"
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(layer(x), dense(x))
    with torch.no_grad():
        layer.log_sigma2[:, 2] = 20.0  # input channel 2: every kernel weight has log_alpha = 10 > 3
        layer.log_sigma2[1, 0, 0, 0] = 20.0
    mask = layer.weight_mask
    assert int((~mask).sum()) == 5 * 15 + 1
    assert layer.kept_fraction == pytest.approx(1 - 76 / 225)
    y = layer(x)
    torch.testing.assert_close(y, F.conv2d(x, layer.theta * mask, layer.bias, padding="same"))
    x2 = x.clone()
    x2[:, 2] = 1e6 * torch.randn(2, 6, 6)
    assert torch.equal(layer(x2), y)  # channel 2 has no path to the output
    layer.sampling = "sample"
    assert not torch.equal(layer(x2)[0], layer(x)[0])  # sample mode does not prune by default
    layer.prune_in_sample = True
    layer.generator = torch.Generator().manual_seed(0)
    a = layer(x2)
    layer.generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(a, layer(x))  # ... unless asked to


def test_conv_kl_is_the_sum_over_kernel_weights_and_the_kingma_cap():
    torch.manual_seed(10)
    conv = vbayes.layers.Conv2dSVD(2, 3, 3)
    with torch.no_grad():
        conv.log_sigma2.uniform_(-8.0, 4.0)
    la = torch.clamp(conv.log_sigma2 - torch.log(conv.theta**2 + 1e-8), -10, 10)
    torch.testing.assert_close(conv.kl_divergence(), kl_molchanov(la).sum())
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), LinearSVD(3 * 4 * 4, 2))
    assert model(torch.randn(5, 2, 6, 6)).shape == (5, 2)
    torch.testing.assert_close(vbayes.kl_divergence(model), kl_molchanov(la).sum() + model[3].kl_divergence())
    capped = vbayes.layers.Conv2dSVD(2, 3, 3, log_alpha_max=0.0, kl="kingma")
    with torch.no_grad():
        capped.theta.copy_(conv.theta)
        capped.log_sigma2.copy_(conv.log_sigma2)
    assert capped.log_alpha.max() == 0.0 and (capped.log_alpha == la.clamp(max=0.0)).all()
    torch.testing.assert_close(capped.kl_divergence(), kl_kingma(la.clamp(max=0.0)).sum())
    torch.testing.assert_close(capped.weight_std**2, la.clamp(max=0.0).exp() * conv.theta**2)


def test_conv_shapes_unbatched_and_gradients():
    layer = vbayes.layers.Conv2dSVD(2, 4, 3, stride=2, bias=False)
    assert layer.bias is None and layer.theta.shape == layer.log_sigma2.shape == (4, 2, 3, 3)
    assert layer(torch.randn(2, 9, 9)).shape == (4, 4, 4)
    out = layer(torch.randn(3, 2, 9, 9))
    assert out.shape == (3, 4, 4, 4)
    (out.sum() + layer.kl_divergence()).backward()
    assert layer.theta.grad is not None and layer.log_sigma2.grad.abs().sum() > 0
    assert "kernel_size=(3, 3)" in repr(layer) and "prune_threshold=3.0" in repr(layer)


@pytest.mark.parametrize("make, x, match", [
    (lambda: vbayes.layers.Conv2dSVD(2, 4, 3), torch.randn(1, 3, 5, 5), r"expected input of shape \(N, 2, H, W\)"),
    (lambda: vbayes.layers.Conv2dSVD(2, 4, 3), torch.randn(5, 5), r"got \(5, 5\)"),
    (lambda: vbayes.layers.Conv2dSVD(2, 4, 3), [[1.0]], "must be a Tensor"),
    (lambda: LinearSVD(3, 2), torch.randn(4, 5), r"expected input of shape \(\*, 3\)"),
])
def test_one_line_input_errors(make, x, match):
    with pytest.raises((ValueError, TypeError), match=match) as err:
        make()(x)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("make, match", [
    (lambda: vbayes.layers.Conv2dSVD(0, 4, 3), "in_channels must be a positive int"),
    (lambda: vbayes.layers.Conv2dSVD(3, 4, 3, groups=2), "divisible by groups"),
    (lambda: vbayes.layers.Conv2dSVD(2, 4, 0), "kernel_size must be a positive int"),
    (lambda: vbayes.layers.Conv2dSVD(2, 4, 3, padding="full"), "padding must be"),
    (lambda: vbayes.layers.Conv2dSVD(2, 4, 3, log_sigma2_init=math.nan), "log_sigma2_init must be a finite"),
    (lambda: LinearSVD(2, 0), "out_features must be a positive int"),
    (lambda: LinearSVD(2, 3, kl="exact"), "kl must be one of molchanov, kingma"),
    (lambda: LinearSVD(2, 3, kl="kingma"), "needs log_alpha_max <= 0"),
    (lambda: LinearSVD(2, 3, log_alpha_max=11.0), r"log_alpha_max must be in \(-10, 10\]"),
])
def test_one_line_construction_errors(make, match):
    with pytest.raises(ValueError, match=match) as err:
        make()
    assert "\n" not in str(err.value)
