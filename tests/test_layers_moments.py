"""Monte-Carlo mean and variance of every layer's output against the analytic moments.

For a fixed input and q(w) = N(mu, sigma^2), every estimator's output has mean
op(x, mu, b_mu) and variance op(x^2, sigma^2, sigma_b^2). The tolerance is 5 standard errors of
the estimate from S draws: sqrt(var / S) for the mean and var * sqrt(2 / (S - 1)) for the
variance of a Gaussian output.
"""

from __future__ import annotations

import math

import pytest
import torch

from vbayes import layers as L

S = 1500
FAMILIES = {
    "linear": ((L.LinearReparam, L.LinearFlipout, L.LinearLRT), dict(in_features=4, out_features=3), (2, 4)),
    "conv1d": ((L.Conv1dReparam, L.Conv1dFlipout, L.Conv1dLRT),
               dict(in_channels=2, out_channels=2, kernel_size=3, padding=1), (2, 2, 5)),
    "conv2d": ((L.Conv2dReparam, L.Conv2dFlipout, L.Conv2dLRT),
               dict(in_channels=2, out_channels=2, kernel_size=3, stride=2, padding=1), (2, 2, 5, 5)),
    "convT2d": ((L.ConvTranspose2dReparam, L.ConvTranspose2dFlipout, L.ConvTranspose2dLRT),
                dict(in_channels=2, out_channels=2, kernel_size=3, stride=2, padding=1, output_padding=1),
                (1, 2, 3, 3)),
}
CASES = [(fam, cls) for fam, (classes, _, _) in FAMILIES.items() for cls in classes]


@pytest.mark.parametrize("family, cls", CASES, ids=[c.__name__ for _, c in CASES])
def test_mc_moments_match_analytic(family, cls):
    _, kwargs, x_shape = FAMILIES[family]
    torch.manual_seed(0)
    layer = cls(**kwargs, dtype=torch.float64)
    with torch.no_grad():  # distinct, non-trivial sigmas
        layer.weight_rho.uniform_(-2.0, 0.0)
        layer.bias_rho.uniform_(-2.0, 0.0)
    layer.generator = torch.Generator().manual_seed(1)
    x = torch.randn(x_shape, dtype=torch.float64)
    with torch.no_grad():
        draws = torch.stack([layer(x) for _ in range(S)])
        mean = layer._op(x, layer.weight_mu, layer.bias_mu)
        var = layer._op(x * x, layer.weight_std**2, layer.bias_std**2)
    assert draws.shape[1:] == mean.shape
    z_mean = (draws.mean(0) - mean) / (var / S).sqrt()
    z_var = (draws.var(0) - var) / (var * math.sqrt(2 / (S - 1)))
    assert z_mean.abs().max() < 5, f"mean off by {z_mean.abs().max():.1f} SE"
    assert z_var.abs().max() < 5, f"variance off by {z_var.abs().max():.1f} SE"


@pytest.mark.parametrize("cls", [L.LinearFlipout, L.LinearLRT, L.LinearReparam])
def test_per_example_correlation(cls):
    """Two copies of the same input in one batch: Flipout and LRT perturb them uncorrelated,
    Reparam identically (one weight sample per batch)."""
    torch.manual_seed(0)
    layer = cls(6, 1, dtype=torch.float64)
    with torch.no_grad():
        layer.weight_rho.fill_(0.0)
    x = torch.randn(1, 6, dtype=torch.float64).repeat(2, 1)
    with torch.no_grad():
        d = torch.stack([layer(x)[:, 0] for _ in range(S)])
    d = d - d.mean(0)
    corr = ((d[:, 0] * d[:, 1]).mean() / (d[:, 0].std() * d[:, 1].std())).item()
    if cls is L.LinearReparam:
        assert corr > 0.999
    else:
        assert abs(corr) < 5 / math.sqrt(S)
