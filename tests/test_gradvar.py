"""Gradient-variance scaling: Flipout and LRT ~ 1/batch, Reparam plateaus (small synthetic case)."""

from __future__ import annotations

import json

import pytest
import torch

from vbayes.cli.bench.gradvar import ESTIMATORS, bayesian_mlp, gradient_variance, loglog_slope, plot


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 10, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return x, y


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_noise_variance_scaling(name, data):
    x, y = data
    torch.manual_seed(0)
    model = bayesian_mlp(ESTIMATORS[name], [10, 16, 3], std_init=0.3)
    gen = torch.Generator().manual_seed(1)
    small, _ = gradient_variance(model, x, y, 16, 60, gen)
    large, _ = gradient_variance(model, x, y, 256, 60, gen)
    ratio = small / large  # 16 when the variance ~ 1/B, 1 at a plateau (measured: ~2.3 and ~15)
    if name == "reparam":
        assert ratio < 5, ratio
    else:
        assert ratio > 8, ratio


def test_slope_and_plot():
    assert loglog_slope([1, 10, 100], [1.0, 0.1, 0.01]) == pytest.approx(-1.0)
    result = {"batch_sizes": [1, 4], "noise": {"lrt": [1.0, 0.25]}, "total": {"lrt": [2.0, 0.5]},
              "slope": {"noise/lrt": -1.0, "total/lrt": -1.0}}
    png = plot(result)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(result)
