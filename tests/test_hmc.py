"""HMC: batched network equals a per-chain loop; the sampler recovers closed-form posteriors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from _blr import blr_problem

from vbayes.errors import VBayesError
from vbayes.methods import get_method
from vbayes.methods.diagnostics import ess
from vbayes.methods.hmc import BatchedMLP
from vbayes.methods.hmc_sampler import _DualAveraging, sample_hmc


def test_batched_mlp_equals_loop_over_chains() -> None:
    torch.manual_seed(0)
    net = BatchedMLP((3, 5, 4, 2), "tanh")
    theta = torch.randn(6, net.n_params)
    x = torch.randn(7, 3)
    out = net(theta, x)
    assert out.shape == (6, 7, 2)
    for c in range(6):
        off = 0
        h = x
        layers = [(3, 5), (5, 4), (4, 2)]
        for i, (a, b) in enumerate(layers):
            lin = nn.Linear(a, b)
            with torch.no_grad():
                lin.weight.copy_(theta[c, off : off + a * b].reshape(a, b).T)
                off += a * b
                lin.bias.copy_(theta[c, off : off + b])
                off += b
            h = lin(h)
            if i < 2:
                h = torch.tanh(h)
        torch.testing.assert_close(out[c], h)


def test_sampler_gaussian_target_mean_and_variance() -> None:
    """Correlated 2-d Gaussian: moments within 5 standard errors (from the measured ESS)."""
    mean = torch.tensor([1.0, -2.0])
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]]) * torch.tensor([[1.0], [4.0]]).sqrt() * torch.tensor([[1.0, 4.0]]).sqrt()
    prec = torch.linalg.inv(cov)

    def log_prob(q: torch.Tensor) -> torch.Tensor:
        d = q - mean
        return -0.5 * ((d @ prec) * d).sum(1)

    gen = torch.Generator().manual_seed(0)
    res = sample_hmc(log_prob, torch.zeros(4, 2), num_warmup=300, num_samples=600, n_leapfrog=10, generator=gen)
    draws = res.samples.double().numpy()  # (C, T, 2)
    assert res.divergent.sum() == 0
    # warm-up is recorded apart: its divergences are not in ``divergent``
    assert res.warmup_accept_prob.shape == res.warmup_divergent.shape == (4, 300)
    assert res.warmup_divergences == int(res.warmup_divergent.sum())
    assert res.adapt_restarts == [100, 150, 250]  # ends of the slow windows 75-100, 100-150, 150-250
    # dual averaging meets its target on the mean statistic of each run (here the last, 250-300)
    assert abs(float(res.warmup_accept_prob[:, 250:].mean()) - 0.8) < 0.1
    for i in range(2):
        n_eff = ess(draws[:, :, i], rank=False)
        assert n_eff > 100
        se = math.sqrt(float(cov[i, i]) / n_eff)
        assert abs(draws[:, :, i].mean() - float(mean[i])) < 5 * se
        var = draws[:, :, i].var()
        assert abs(var / float(cov[i, i]) - 1) < 5 * math.sqrt(2 / n_eff)


def test_dual_averaging_updates_by_hand() -> None:
    """Hoffman & Gelman (2014) Alg. 5 / Stan's learn_stepsize: gamma 0.05, t0 10, kappa 0.75,
    mu = log(10 eps0), x_bar a running m^-kappa average, all reset by ``restart``."""
    eps0, delta = 0.2, 0.8
    da = _DualAveraging(torch.tensor([eps0], dtype=torch.float64), delta)
    mu = math.log(10 * eps0)
    h1 = (delta - 0.5) / 11
    x1 = mu - 1 / 0.05 * h1
    assert float(da.update(torch.tensor([0.5], dtype=torch.float64))) == pytest.approx(math.exp(x1))
    assert float(da.final) == pytest.approx(math.exp(x1))  # eta_1 = 1: x_bar_1 = x_1
    h2 = (1 - 1 / 12) * h1 + (delta - 1.0) / 12
    x2 = mu - math.sqrt(2) / 0.05 * h2
    assert float(da.update(torch.tensor([1.0], dtype=torch.float64))) == pytest.approx(math.exp(x2))
    eta = 2**-0.75
    assert float(da.final) == pytest.approx(math.exp(eta * x2 + (1 - eta) * x1))
    da.restart(torch.tensor([0.05], dtype=torch.float64))
    assert float(da.update(torch.tensor([0.5], dtype=torch.float64))) == pytest.approx(
        math.exp(math.log(0.5) - 20 * (delta - 0.5) / 11))


def test_dual_averaging_finds_the_target_step_of_a_noise_free_curve() -> None:
    """With a deterministic acceptance 1 / (1 + eps^4), exp(x_bar) tends to the eps where it is
    0.8, (1/4)^(1/4); the overshoot seen in sampling comes from noisy iterates, not the update."""
    da = _DualAveraging(torch.tensor([1.0, 0.01], dtype=torch.float64), 0.8)
    eps = torch.tensor([1.0, 0.01], dtype=torch.float64)
    for _ in range(3000):
        eps = da.update(1 / (1 + eps**4))
    torch.testing.assert_close(da.final, torch.full((2,), 0.25**0.25, dtype=torch.float64), rtol=0.01, atol=0)


def test_hmc_method_bayesian_linear_regression_closed_form() -> None:
    """hidden=() and fixed noise is Bayesian linear regression: Gaussian posterior in closed form."""
    p = blr_problem(n=30, prior_std=1.0)
    method = get_method(
        "hmc", hidden=(), seed=0, noise="fixed", noise_std=p.noise, prior_std=p.prior_std, num_warmup=200,
        num_samples=400, n_leapfrog=8,
    ).fit(p.x, p.y)
    draws = method.samples.double().numpy()  # parameter order w1, w2, b
    assert method.info["divergences"] == 0
    assert method.info["rhat_max"] < 1.05
    for i in range(3):
        n_eff = ess(draws[:, :, i], rank=False)
        se = math.sqrt(float(p.cov[i, i]) / n_eff)
        assert abs(draws[:, :, i].mean() - float(p.mean[i])) < 5 * se
        assert abs(draws[:, :, i].var() / float(p.cov[i, i]) - 1) < 5 * math.sqrt(2 / n_eff)
    pred = method.predict(p.x[:5])
    assert pred.mu.shape == (1000, 5) and pred.sigma.shape == (1000, 5)
    torch.testing.assert_close(pred.sigma, torch.full_like(pred.sigma, p.noise))


def test_hmc_gamma_noise_info_and_shapes() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.linspace(-1, 1, 20)[:, None]
    y = torch.sin(3 * x[:, 0]) + 0.1 * torch.randn(20, generator=gen)
    m = get_method("hmc", hidden=(8,), seed=0, num_chains=3, num_warmup=60, num_samples=40, n_leapfrog=8)
    m.fit(x, y)
    for key in ("rhat_max", "ess_min", "divergences", "warmup_divergences", "step_size", "accept_rate",
                "warmup_accept_rate", "target_accept", "rhat_max_params"):
        assert key in m.info
    assert m.info["target_accept"] == 0.8 and 0 <= m.info["warmup_accept_rate"] <= 1
    pred = m.predict(torch.zeros(4, 1))
    assert pred.mu.shape == (120, 4)
    assert (pred.sigma > 0).all() and torch.isfinite(pred.mu).all()
    assert m.samples.shape == (3, 40, 8 * 3 + 1 + 1)


def test_hmc_refuses_large_networks() -> None:
    x = torch.rand(10, 784)
    y = torch.randint(0, 10, (10,))
    with pytest.raises(VBayesError, match="max_params"):
        get_method("hmc", task="classification", n_classes=10, hidden=(100,)).fit(x, y)


@pytest.mark.parametrize("task, activation", [("regression", "relu"), ("regression", "tanh"), ("classification", "relu")])
def test_hand_written_gradient_equals_autograd(task: str, activation: str) -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(9, 3, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (9,), generator=gen) if task == "classification" else torch.randn(9, generator=gen, dtype=torch.float64)
    m = get_method("hmc", task=task, n_classes=3 if task == "classification" else None, hidden=(4, 5), activation=activation)
    m._build(3)
    m.prior_sd = m.prior_sd.double()
    theta = torch.randn(2, m.n_params, generator=gen, dtype=torch.float64, requires_grad=True)
    lp = m.log_prob(theta, x, y)
    (expected,) = torch.autograd.grad(lp.sum(), theta)
    value, grad = m.value_and_grad(theta.detach(), x, y)
    torch.testing.assert_close(value, lp.detach())
    torch.testing.assert_close(grad, expected)


def test_bench_mcmc_cli_writes_json_and_figure(tmp_path) -> None:
    import json

    from vbayes.cli import main

    out = tmp_path / "bench"
    args = ["bench", "mcmc", "--widths", "2,3", "--chains", "2", "--warmup", "10", "--samples", "8",
            "--n-leapfrog", "3", "--out", str(out)]
    assert main(args) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert [r["width"] for r in result["rows"]] == [2, 3]
    assert result["rows"][0]["n_params"] == 2 * 2 + 2 + 1 + 1
    for key in ("rhat_max", "ess_min", "ess_per_second", "divergences", "seconds"):
        assert key in result["rows"][1]
    assert (out / "mixing.png").stat().st_size > 1000
    assert main(args) == 2  # refuses to replace a previous run without --overwrite
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "mcmc", "--widths", "0", "--out", str(out)])
    assert exit_info.value.code == 2
