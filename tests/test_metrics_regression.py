"""Regression metrics against hand-computed cases, closed forms, scipy and torch.distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats

from vbayes.metrics import REGRESSION, regression as R
from vbayes.methods.predictive import RegressionPrediction


def mixture(seed: int = 0, s: int = 3, n: int = 7) -> tuple[RegressionPrediction, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(s, n, generator=g, dtype=torch.float64) * 2
    sigma = 0.3 + torch.rand(s, n, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64) * 2
    return RegressionPrediction(mu, sigma), y


def mix_cdf(mu: np.ndarray, sig: np.ndarray, x: float) -> float:
    return float(stats.norm.cdf(x, mu, sig).mean())


def test_rmse_hand_case() -> None:
    pred = RegressionPrediction(torch.tensor([[1.0, 2.0], [3.0, 2.0]]), torch.ones(2, 2))
    # mean = [2, 2]; errors [2-1, 2-4] = [1, -2]; rmse = sqrt(5/2)
    assert R.rmse(pred, torch.tensor([1.0, 4.0])) == pytest.approx(math.sqrt(2.5))


def test_nll_single_gaussian_matches_torch_distributions() -> None:
    pred, y = mixture(s=1)
    ref = -torch.distributions.Normal(pred.mu[0], pred.sigma[0]).log_prob(y).mean()
    assert R.nll(pred, y) == pytest.approx(float(ref), rel=1e-12)


def test_nll_is_of_the_mixture_not_a_moment_matched_gaussian() -> None:
    pred, y = mixture(s=3)
    dens = stats.norm.pdf(y.numpy(), pred.mu.numpy(), pred.sigma.numpy()).mean(0)
    assert R.nll(pred, y) == pytest.approx(float(-np.log(dens).mean()), rel=1e-10)
    gauss = -stats.norm.logpdf(y.numpy(), pred.mean.numpy(), pred.total_var.sqrt().numpy()).mean()
    assert abs(R.nll(pred, y) - gauss) > 1e-3


def test_nll_stable_far_in_the_tail() -> None:
    pred = RegressionPrediction(torch.zeros(2, 1), torch.full((2, 1), 0.01))
    value = R.nll(pred, torch.tensor([5.0]))  # density underflows in float64 if not in log space
    assert value == pytest.approx(0.5 * 500**2 + math.log(0.01 * math.sqrt(2 * math.pi)), rel=1e-6)


def test_crps_single_gaussian_closed_form() -> None:
    pred, y = mixture(s=1, n=20)
    mu, s = pred.mu[0].numpy(), pred.sigma[0].numpy()
    z = (y.numpy() - mu) / s
    ref = s * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))
    assert R.crps(pred, y) == pytest.approx(float(ref.mean()), rel=1e-10)


def test_crps_mixture_matches_numerical_integral() -> None:
    pred, y = mixture(seed=1, s=4, n=3)
    mus, sigs = pred.mu.numpy(), pred.sigma.numpy()
    scores = []
    for n in range(3):
        m, s, yn = mus[:, n], sigs[:, n], float(y[n])
        f = lambda x: (mix_cdf(m, s, x) - (x >= yn)) ** 2  # noqa: E731
        lo, hi = min(m - 12 * s.max()), max(m + 12 * s.max())
        a = integrate.quad(f, lo, yn, limit=200)[0] + integrate.quad(f, yn, hi, limit=200)[0]
        scores.append(a)
    assert R.crps(pred, y) == pytest.approx(float(np.mean(scores)), rel=1e-6)


def test_picp_mpiw_single_gaussian() -> None:
    mu = torch.zeros(1, 4, dtype=torch.float64)
    sigma = torch.tensor([[1.0, 2.0, 1.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([1.9, -3.8, 2.0, 0.0], dtype=torch.float64)  # z = 1.9, -1.9, 2.0, 0
    pred = RegressionPrediction(mu, sigma)
    assert R.picp(pred, y) == pytest.approx(0.75)
    assert R.mpiw(pred, y) == pytest.approx(2 * stats.norm.ppf(0.975) * 1.25, rel=1e-9)
    assert R.picp(pred, y, level=0.5) == pytest.approx(0.25)  # only z=0 inside +-0.674


def test_mixture_quantile_matches_scipy_root() -> None:
    pred, _ = mixture(seed=2, s=5, n=4)
    q = R.mixture_quantile(pred, 0.9).numpy()
    for n in range(4):
        m, s = pred.mu[:, n].numpy(), pred.sigma[:, n].numpy()
        ref = optimize.brentq(lambda x: mix_cdf(m, s, x) - 0.9, -50, 50, xtol=1e-12)
        assert q[n] == pytest.approx(ref, abs=1e-8)


def test_calibration_of_a_true_predictive_is_small_and_of_a_shifted_one_large() -> None:
    n = 4000
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(2, n, generator=g, dtype=torch.float64)
    sigma = torch.full((2, n), 0.5, dtype=torch.float64)
    pick = torch.randint(0, 2, (n,), generator=g)
    y = mu[pick, torch.arange(n)] + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    pred = RegressionPrediction(mu, sigma)
    exp, obs = R.calibration_curve(pred, y)
    # DKW: sup |empirical - true CDF| <= sqrt(log(2/a)/(2n)) with prob 1-a; a = 1e-6
    assert np.abs(obs - exp).max() < math.sqrt(math.log(2e6) / (2 * n))
    assert R.miscalibration_area(pred, y) < math.sqrt(math.log(2e6) / (2 * n))
    over = RegressionPrediction(mu, sigma * 0.25)  # badly over-confident
    assert R.miscalibration_area(over, y) > 0.1
    assert R.picp(pred, y) == pytest.approx(0.95, abs=5 * math.sqrt(0.95 * 0.05 / n))


def test_calibration_curve_hand_case() -> None:
    # PIT values 0.5 (y = mu), ~0.977 (z = 2) -> interval stats 0 and ~0.954
    pred = RegressionPrediction(torch.zeros(1, 2), torch.ones(1, 2))
    exp, obs = R.calibration_curve(pred, torch.tensor([0.0, 2.0]), n_levels=3)
    np.testing.assert_allclose(exp, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(obs, [0, 0.5, 0.5, 0.5, 1.0])
    exp, obs = R.calibration_curve(pred, torch.tensor([0.0, 2.0]), n_levels=3, kind="quantile")
    np.testing.assert_allclose(obs, [0, 0.0, 0.5, 0.5, 1.0])


def test_table_and_shape_errors() -> None:
    pred, y = mixture()
    for key, (fn, display, _) in REGRESSION.items():
        assert math.isfinite(fn(pred, y)), key
        assert display
    with pytest.raises(ValueError, match="N=7"):
        R.rmse(pred, y[:3])
    with pytest.raises(ValueError, match="sigma"):
        R.nll(RegressionPrediction(pred.mu, -pred.sigma), y)


def test_crps_many_components_estimate_close_to_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above CRPS_MAX_COMPONENTS the distinct-pair term is a thinned estimate: posterior-like
    components (means spread 0.3 noise widths) must agree with the exact value within 0.2%."""
    g = torch.Generator().manual_seed(5)
    s, n = 240, 6
    mu = 0.3 * torch.randn(s, n, generator=g, dtype=torch.float64) + torch.randn(n, generator=g, dtype=torch.float64)
    sigma = 1.0 + 0.1 * torch.rand(s, n, generator=g, dtype=torch.float64)
    pred, y = RegressionPrediction(mu, sigma), torch.randn(n, generator=g, dtype=torch.float64)
    exact = R.crps(pred, y)  # 240 <= CRPS_MAX_COMPONENTS: every pair
    monkeypatch.setattr(R, "CRPS_MAX_COMPONENTS", 60)
    assert R.crps(pred, y) == pytest.approx(exact, rel=2e-3)


def test_mixture_quantile_bimodal_and_single_gaussian() -> None:
    mu = torch.tensor([[-8.0], [8.0], [9.0]], dtype=torch.float64)
    sigma = torch.tensor([[0.2], [1.0], [0.05]], dtype=torch.float64)
    pred = RegressionPrediction(mu, sigma)
    for q in (0.01, 0.3, 0.34, 0.9, 0.999):
        ref = optimize.brentq(lambda x: mix_cdf(mu[:, 0].numpy(), sigma[:, 0].numpy(), x) - q, -50, 50, xtol=1e-13)
        assert float(R.mixture_quantile(pred, q)[0]) == pytest.approx(ref, abs=1e-7), q
    single = RegressionPrediction(torch.tensor([[1.0, -2.0]]), torch.tensor([[2.0, 0.5]]))
    expected = torch.tensor([1.0, -2.0]) + torch.tensor([2.0, 0.5]) * stats.norm.ppf(0.975)
    assert torch.allclose(R.mixture_quantile(single, 0.975).float(), expected, atol=1e-6)
