"""Every inference method against an independent oracle on Bayesian linear regression.

With ``hidden=()`` and the noise fixed at the truth, each method has a known answer:

* ``sgld``: its draws follow the exact Gaussian posterior (mean and variance within Monte-Carlo
  error, the error from the draws' effective sample size);
* ``bbb``, ``flipout``, ``lrt``: the optimal mean-field Gaussian, whose means are the exact
  posterior mean and whose variances are ``1 / diag(posterior precision)``;
* ``output`` / ``ensemble``: the ridge (MAP) solution; with adversarial training, the minimiser
  of the FGSM-augmented objective, found by SciPy on its own closed-form expression;
* ``dropout`` (inputs dropped): the minimiser of the expected dropout objective, which for a
  linear model is a ridge problem with data-dependent penalties (closed form).

``hmc`` has its closed-form test in ``test_hmc.py``. Each check fails for a broken method: SGLD
with its injected noise scaled down (the variance collapses), variational weights without the KL
(the variances collapse, the means move to least squares), an adversarial step pointed the wrong
way (a different minimiser), or the dropout penalty off by a factor 2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from _blr import assert_mean_field_optimum, blr_problem
from vbayes.methods import METHOD_NAMES, get_method
from vbayes.methods.diagnostics import ess
from vbayes.methods.output import fgsm_inputs

PROBLEM = blr_problem()


def _point_params(model: torch.nn.Module) -> torch.Tensor:
    layer = model[-1]
    return torch.cat([layer.weight.detach().reshape(-1), layer.bias.detach()]).double()


def _known_noise(**options):
    return dict(hidden=(), noise="fixed", noise_std=PROBLEM.noise, prior_std=PROBLEM.prior_std, **options)


@pytest.mark.parametrize("precondition,lr", [(False, 6e-4), (True, 5e-3)])
def test_sgld_draws_follow_the_exact_posterior(precondition: bool, lr: float) -> None:
    p = PROBLEM
    method = get_method("sgld", seed=0, **_known_noise(batch_size=p.x.shape[0], steps=20000, n_samples=2000,
                                                        precondition=precondition, lr=lr, lr_decay=0.0))
    method.fit(p.x, p.y)
    draws = torch.stack(method.samples).double()  # (S, 3): w1, w2, b
    for i in range(3):
        n_eff = ess(draws[None, :, i].numpy(), rank=False)
        assert n_eff > 50, f"parameter {i}: effective sample size {n_eff:.0f}"
        sd = math.sqrt(float(p.cov[i, i]))
        assert abs(float(draws[:, i].mean()) - float(p.mean[i])) < 4 * sd / math.sqrt(n_eff)
        assert abs(float(draws[:, i].var()) / sd**2 - 1) < 4 * math.sqrt(2 / n_eff)


@pytest.mark.parametrize("name", ["bbb", "flipout", "lrt"])
def test_variational_weights_reach_the_mean_field_optimum(name: str) -> None:
    p = PROBLEM
    steps = 2000 if name == "bbb" else 4000  # bbb draws 8 weight samples one pass each: slower
    method = get_method(name, seed=0, **_known_noise(steps=steps)).fit(p.x, p.y)
    assert_mean_field_optimum(method, p)


def _ridge(weight_decay: float) -> torch.Tensor:
    """Minimiser of mean NLL + (wd / 2) ||w||^2 (bias unpenalised) at the known noise."""
    x, n = PROBLEM.design, PROBLEM.x.shape[0]
    penalty = torch.full((x.shape[1],), PROBLEM.noise**2 * n * weight_decay, dtype=torch.float64)
    penalty[-1] = 0.0
    return torch.linalg.solve(x.T @ x + torch.diag(penalty), x.T @ PROBLEM.y.double())


POINT = dict(batch_size=None, lr=1e-2, final_lr=1e-4, steps=2000)


@pytest.mark.parametrize("name", ["output", "ensemble"])
def test_point_networks_reach_the_ridge_solution(name: str) -> None:
    extra = {"n_members": 2} if name == "ensemble" else {}
    method = get_method(name, seed=0, hidden=(), noise="fixed", noise_std=PROBLEM.noise, weight_decay=0.05,
                        **POINT, **extra).fit(PROBLEM.x, PROBLEM.y)
    models = [m for m, _ in method.members] if name == "ensemble" else [method.model]
    for model in models:
        torch.testing.assert_close(_point_params(model), _ridge(0.05), rtol=1e-4, atol=1e-4)


def test_fgsm_step_increases_the_loss_it_perturbs() -> None:
    gen = torch.Generator().manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x, y = torch.randn(16, 3, generator=gen), torch.randn(16, generator=gen)

    def nll(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((net(xb)[:, 0] - yb) ** 2).mean()

    eps = torch.full((3,), 0.05)
    x_adv = fgsm_inputs(nll, x, y, eps)
    torch.testing.assert_close((x_adv - x).abs(), eps.expand_as(x))
    with torch.no_grad():
        assert float(nll(x_adv, y)) > float(nll(x, y)) > float(nll(2 * x - x_adv, y))


def test_adversarial_ensemble_minimises_the_fgsm_objective() -> None:
    """For a linear model the FGSM input moves every residual away from 0 by ``eps . |w|``: the
    objective ``mean(r^2 + (|r| + eps . |w|)^2) / (2 noise^2) + (wd / 2) ||w||^2`` is minimised
    by SciPy from its own formula; the member must land there (not at the wrong-way minimiser)."""
    p, wd, frac = PROBLEM, 0.05, 0.1
    eps = (frac * (p.x.max(0).values - p.x.min(0).values)).double().numpy()
    x, y = p.design.numpy(), p.y.double().numpy()

    def objective(theta: np.ndarray, sign: float) -> float:
        w, b = theta[:-1], theta[-1]
        r = y - x[:, :-1] @ w - b
        r_adv = np.abs(r) + sign * float(eps @ np.abs(w))
        return float((np.mean(r**2) + np.mean(r_adv**2)) / (2 * p.noise**2) + 0.5 * wd * (w**2).sum())

    opts = {"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000}
    start = _ridge(wd).numpy()
    best = minimize(objective, start, args=(1.0,), method="Nelder-Mead", options=opts).x
    wrong_way = minimize(objective, start, args=(-1.0,), method="Nelder-Mead", options=opts).x
    assert np.abs(best - wrong_way).max() > 0.05  # the check can tell the two apart
    method = get_method("ensemble", seed=0, hidden=(), noise="fixed", noise_std=p.noise, weight_decay=wd,
                        n_members=1, adversarial=True, adv_eps=frac, **POINT).fit(p.x, p.y)
    torch.testing.assert_close(_point_params(method.members[0][0]), torch.from_numpy(best), rtol=1e-4, atol=1e-4)


def test_mc_dropout_minimises_the_expected_dropout_objective() -> None:
    """Inputs dropped with probability p (kept ones scaled by 1 / (1 - p)) in a linear model:
    ``E_mask (y - w . (m * x) / (1 - p) - b)^2 = (y - w . x - b)^2 + p / (1 - p) sum_d w_d^2 x_d^2``,
    so the expected loss plus Gal's penalty ``l^2 (1 - p) / (2 N) ||w||^2`` is a ridge problem."""
    p, drop, lengthscale = PROBLEM, 0.2, 3.0
    x, n = p.design, p.x.shape[0]
    penalty = torch.zeros(x.shape[1], dtype=torch.float64)
    kl_per_point = lengthscale**2 * (1 - drop) / (2 * n)  # coefficient of ||w||^2 per training point
    penalty[:-1] = drop / (1 - drop) * (x[:, :-1] ** 2).sum(0) + 2 * p.noise**2 * n * kl_per_point
    expected = torch.linalg.solve(x.T @ x + torch.diag(penalty), x.T @ p.y.double())
    method = get_method("dropout", seed=0, hidden=(), noise="fixed", noise_std=p.noise, p=drop,
                        lengthscale=lengthscale, input_dropout=True, **{**POINT, "steps": 4000}).fit(p.x, p.y)
    # mask noise leaves ~5e-4 of jitter; a penalty off by 2x moves the weights by 0.02
    torch.testing.assert_close(_point_params(method.model), expected, rtol=0, atol=4e-3)


@pytest.mark.parametrize("name", ["output", "ensemble"])
def test_map_under_the_shared_prior_is_the_posterior_mean(name: str) -> None:
    """With ``prior_std`` a point network is the MAP estimate under the Bayesian methods' prior;
    for Bayesian linear regression that is the exact posterior mean."""
    extra = {"n_members": 2} if name == "ensemble" else {}
    method = get_method(name, seed=0, **_known_noise(**POINT, **extra)).fit(PROBLEM.x, PROBLEM.y)
    models = [m for m, _ in method.members] if name == "ensemble" else [method.model]
    for model in models:
        torch.testing.assert_close(_point_params(model), PROBLEM.mean, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_regression_method_takes_the_same_noise_and_prior_options(name: str) -> None:
    fast = {"hmc": dict(num_warmup=20, num_samples=10, n_leapfrog=4, num_chains=2, init_steps=5)}.get(name, {"steps": 20})
    method = get_method(name, hidden=(), noise="fixed", noise_std=0.5, prior_std=1.0, **fast).fit(PROBLEM.x, PROBLEM.y)
    pred = method.predict(PROBLEM.x[:3])
    torch.testing.assert_close(pred.sigma, torch.full_like(pred.sigma, 0.5))
