"""vbayes.metrics.distances against SciPy and closed forms."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from vbayes.errors import VBayesError
from vbayes.metrics.distances import gaussian_interval_coverage, ks_to_normal, spearman, wasserstein_samples

F64 = torch.finfo(torch.float64).eps


def test_w1_matches_scipy_with_unequal_counts() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(37, 4, generator=gen), 0.5 + 2.0 * torch.rand(23, 4, generator=gen)
    ours = wasserstein_samples(a, b, p=1.0)
    ref = torch.tensor([scipy.stats.wasserstein_distance(a[:, j].numpy(), b[:, j].numpy()) for j in range(4)],
                       dtype=torch.float64)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)


def test_w2_unequal_counts_equals_the_replicated_equal_count_formula() -> None:
    # Repeating each sample set to a common size L leaves its empirical distribution unchanged; with
    # equal counts W2^2 is the mean squared difference of the sorted samples.
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 3, generator=gen).double(), torch.randn(4, 3, generator=gen).double()
    ra, rb = a.repeat(2, 1).sort(0).values, b.repeat(3, 1).sort(0).values
    ref = ((ra - rb) ** 2).mean(0).sqrt()
    torch.testing.assert_close(wasserstein_samples(a, b), ref, rtol=1e-12, atol=1e-12)


def test_w2_between_gaussian_samples_approaches_the_closed_form() -> None:
    # W2(N(m1, s1^2), N(m2, s2^2)) = sqrt((m1 - m2)^2 + (s1 - s2)^2); with n draws each the error is O(1/sqrt(n)).
    n = 40000
    gen = torch.Generator().manual_seed(2)
    a = 1.0 + 0.5 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    b = -0.5 + 2.0 * torch.randn(n + 7, 1, generator=gen, dtype=torch.float64)
    exact = math.sqrt(1.5**2 + 1.5**2)
    assert abs(float(wasserstein_samples(a, b)) - exact) < 10 * 2.0 / math.sqrt(n)


def test_w2_of_a_set_with_itself_is_zero_and_a_point_mass_gives_rms() -> None:
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(50, 2, generator=gen).double()
    assert float(wasserstein_samples(a, a).abs().max()) < 1e-12
    point = torch.zeros(1, 2, dtype=torch.float64)
    torch.testing.assert_close(wasserstein_samples(point, a), a.square().mean(0).sqrt(), rtol=1e-12, atol=1e-12)


def test_ks_to_normal_matches_scipy_kstest() -> None:
    gen = torch.Generator().manual_seed(4)
    x = torch.cat([torch.randn(300, 1, generator=gen), torch.rand(300, 1, generator=gen) ** 3], 1).double()
    ours = ks_to_normal(x)
    for j in range(2):
        col = x[:, j].numpy()
        ref = scipy.stats.kstest(col, "norm", args=(col.mean(), col.std())).statistic
        assert abs(float(ours[j]) - ref) < 1e3 * F64


def test_ks_separates_gaussian_from_bimodal_samples() -> None:
    n = 4000
    gen = torch.Generator().manual_seed(5)
    gauss = torch.randn(n, 1, generator=gen)
    bimodal = torch.where(torch.rand(n, 1, generator=gen) < 0.5, -3.0, 3.0) + 0.3 * torch.randn(n, 1, generator=gen)
    assert float(ks_to_normal(gauss)) < 1.36 / math.sqrt(n) * 1.5  # about the 5% critical value
    assert float(ks_to_normal(bimodal)) > 0.1


def test_gaussian_interval_coverage() -> None:
    n = 20000
    gen = torch.Generator().manual_seed(6)
    cov = float(gaussian_interval_coverage(torch.randn(n, 1, generator=gen)))
    assert abs(cov - 0.95) < 4 * math.sqrt(0.95 * 0.05 / n)
    # uniform samples: m +- 1.96 s covers [0, 1] entirely (1.96 / sqrt(12) > 0.5)
    assert float(gaussian_interval_coverage(torch.rand(n, 1, generator=gen))) == 1.0
    with pytest.raises(VBayesError, match="level"):
        gaussian_interval_coverage(torch.zeros(3, 1), level=1.5)


def test_spearman_matches_scipy_with_ties() -> None:
    a = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    b = torch.tensor([2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0, 8.0])
    assert abs(spearman(a, b) - scipy.stats.spearmanr(a.numpy(), b.numpy()).statistic) < 1e-12
    assert math.isnan(spearman(a[:2], b[:2]))
    with pytest.raises(VBayesError, match="same length"):
        spearman(a, b[:3])
