"""``bbalpha`` against oracles: its energy against the formula computed directly in float64, and
on Bayesian linear regression (``_blr.py``, noise known) the mean-field VI optimum as alpha -> 0
and wider posteriors at alpha = 1.

Each check fails for a broken energy: without the 1 / alpha the energy test fails and alpha ->
0 no longer reaches the VI optimum; with the draws averaged before the log (the ELBO's data term)
alpha = 1 no longer widens the posterior and the energy test fails.
"""

from __future__ import annotations

import math

import pytest
import torch

from _blr import assert_mean_field_optimum, blr_problem, layer_mean_sd
from vbayes.errors import VBayesError
from vbayes.layers import kl_divergence
from vbayes.methods import get_method
from vbayes.methods.bbalpha import alpha_data_term

PROBLEM = blr_problem()
FIT = dict(hidden=(), noise="fixed", noise_std=PROBLEM.noise, prior_std=PROBLEM.prior_std, steps=1000,
           elbo_samples=200)


def _mean_sd(method) -> tuple[torch.Tensor, torch.Tensor]:
    return layer_mean_sd(method.model[0])


def _direct_data_term(loglik: torch.Tensor, alpha: float) -> float:
    """``-(1 / alpha) (1 / B) sum_n log((1 / K) sum_k p_nk^alpha)`` with plain loops in float64."""
    k, b = loglik.shape
    total = 0.0
    for n in range(b):
        mean = sum(math.exp(alpha * float(loglik[j, n])) for j in range(k)) / k
        total += math.log(mean)
    return -total / (alpha * b)


@pytest.mark.parametrize("alpha", [1e-3, 0.5, 1.0])
def test_alpha_data_term_is_the_formula(alpha: float) -> None:
    gen = torch.Generator().manual_seed(0)
    loglik = -3 * torch.rand(7, 5, generator=gen, dtype=torch.float64)  # log-likelihoods in (-3, 0)
    assert float(alpha_data_term(loglik, alpha)) == pytest.approx(_direct_data_term(loglik, alpha), rel=1e-10)
    # it is not the ELBO's data term (draws averaged before the log) unless alpha -> 0
    gap = abs(float(alpha_data_term(loglik, alpha)) + float(loglik.mean()))
    assert gap < 1e-3 if alpha == 1e-3 else gap > 0.05


def test_training_energy_is_the_formula_for_fixed_draws() -> None:
    """The loss of one step, recomputed from the network outputs of its K draws: the Gaussian
    log-likelihoods, their logmeanexp and the closed-form Gaussian KL, all in float64."""
    p, alpha, k = PROBLEM, 0.5, 4
    method = get_method("bbalpha", seed=0, alpha=alpha, train_samples=k, **FIT | {"steps": 30}).fit(p.x, p.y)
    layer = method.model[0]
    outs: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda mod, inp, out: outs.append(out.detach().double()))
    with torch.no_grad():
        data = float(method._data_loss(p.x, p.y, k))
    handle.remove()
    assert len(outs) == k  # one pass per draw, each draw shared by the batch
    mu = torch.stack(outs)[..., 0]  # (K, N)
    loglik = -0.5 * math.log(2 * math.pi * p.noise**2) - (p.y.double() - mu) ** 2 / (2 * p.noise**2)
    assert data == pytest.approx(_direct_data_term(loglik, alpha), rel=1e-5)
    m, sd = _mean_sd(method)
    prior_var = p.prior_std**2 / p.x.shape[1]
    kl = float((0.5 * (sd**2 / prior_var + m**2 / prior_var - 1 - torch.log(sd**2 / prior_var))).sum())
    assert float(kl_divergence(method.model).detach()) == pytest.approx(kl, rel=1e-5)


def test_small_alpha_reaches_the_mean_field_optimum() -> None:
    p = PROBLEM
    method = get_method("bbalpha", seed=0, alpha=1e-3, **FIT).fit(p.x, p.y)
    # measured over seeds 0-2: means within 0.05 sd, sds within 1.5%
    assert_mean_field_optimum(method, p)
    # the energy per point tends to the negative ELBO (measured within 0.01 of the exact one)
    assert abs(method.info["energy"] + p.mean_field_elbo) < 0.03


def test_alpha_one_gives_a_wider_predictive() -> None:
    p = PROBLEM
    vi = get_method("bbalpha", seed=0, alpha=1e-3, n_samples=2000, **FIT).fit(p.x, p.y)
    ep = get_method("bbalpha", seed=0, alpha=1.0, n_samples=2000, **FIT).fit(p.x, p.y)
    target_sd = p.mean_field_var.sqrt()
    # measured over seeds 0-2: sd / mean-field sd 1.36-1.69 at alpha = 1, within 1.5% of 1 as alpha -> 0
    assert (_mean_sd(ep)[1] / target_sd).min() > 1.2
    assert (_mean_sd(vi)[1] / target_sd).max() < 1.05
    xt = torch.tensor([[0.0, 0.0], [2.0, -2.0], [-3.0, 1.0]])
    ratio = ep.predict(xt).epistemic_var.mean(0) / vi.predict(xt).epistemic_var.mean(0)
    assert (ratio > 1.5).all(), ratio


def test_alpha_must_be_in_zero_one() -> None:
    for alpha in (0.0, 1.5, -0.1, "x"):
        with pytest.raises(VBayesError, match="alpha"):
            get_method("bbalpha", alpha=alpha, **FIT).fit(PROBLEM.x, PROBLEM.y)


def test_classification_fits() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=gen)
    y = (x[:, 0] > 0).long()
    method = get_method("bbalpha", task="classification", hidden=(8,), seed=0, steps=200, n_samples=20,
                        elbo_samples=20).fit(x, y)
    probs = method.predict(x).probs.mean(0)
    assert float((probs.argmax(-1) == y).float().mean()) > 0.9
    assert math.isfinite(method.info["energy"])
