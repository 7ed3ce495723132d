"""Method-specific options: adversarial ensembles, SGLD schedule/burn-in/thinning, variational
noise models, MC dropout sampling, and a cheap check that epistemic spread grows off the data."""

from __future__ import annotations

import pytest
import torch

from vbayes.errors import VBayesError
from vbayes.methods import get_method


def _data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, generator=gen) * 2 - 1
    return x, torch.sin(3 * x[:, 0]) + 0.1 * torch.randn(n, generator=gen)


def test_adversarial_ensemble_differs() -> None:
    x, y = _data()
    kw = dict(hidden=(6,), steps=10, n_members=2)
    plain = get_method("ensemble", **kw).fit(x, y).predict(x)
    adv = get_method("ensemble", adversarial=True, **kw).fit(x, y).predict(x)
    assert adv.mu.shape == plain.mu.shape == (2, 24)
    assert not torch.equal(adv.mu, plain.mu)


def test_ensemble_members_have_their_own_seeds() -> None:
    x, y = _data()
    p = get_method("ensemble", hidden=(6,), steps=10, n_members=3).fit(x, y).predict(x)
    assert not torch.equal(p.mu[0], p.mu[1]) and not torch.equal(p.mu[1], p.mu[2])


@pytest.mark.parametrize("precondition", [True, False])
def test_sgld_burnin_and_thinning(precondition: bool) -> None:
    x, y = _data()
    m = get_method("sgld", hidden=(5,), steps=40, burnin=0.5, n_samples=7, precondition=precondition).fit(x, y)
    assert m.info["total_steps"] == 40 and m.info["burnin_steps"] == 20
    assert m.info["thin"] == 20 // 7 and m.info["n_samples"] == 7
    assert m.info["final_step_size"] == pytest.approx(1e-3 * (1 + 39 / 1000) ** -0.55)
    p = m.predict(x)
    assert p.mu.shape == (7, 24) and torch.isfinite(p.mu).all()
    with pytest.raises(VBayesError, match="burnin"):
        get_method("sgld", burnin=1.0).fit(x, y)


@pytest.mark.parametrize("name", ["bbb", "flipout", "lrt"])
def test_variational_homoscedastic_noise(name: str) -> None:
    x, y = _data()
    m = get_method(name, hidden=(5,), steps=15, n_samples=4, noise="homoscedastic").fit(x, y)
    p = m.predict(x)
    assert p.sigma.shape == (4, 24)
    assert torch.allclose(p.sigma, p.sigma[0, 0].expand_as(p.sigma))  # one shared noise level
    assert m.info["kl"] > 0
    with pytest.raises(VBayesError, match="prior_scaling"):
        get_method(name, prior_scaling="he").fit(x, y)


def test_dropout_samples_differ_and_bad_p() -> None:
    x, y = _data()
    p = get_method("dropout", hidden=(8,), steps=10, n_samples=5, p=0.3).fit(x, y).predict(x)
    assert p.epistemic_var.sum() > 0
    with pytest.raises(VBayesError, match="dropout p"):
        get_method("dropout", p=1.0).fit(x, y)


def test_ensemble_epistemic_grows_away_from_data() -> None:
    x, y = _data(40)
    m = get_method("ensemble", hidden=(16,), steps=300, n_members=4, seed=1).fit(x, y)
    on_data = m.predict(x).epistemic_var.sqrt().mean()
    far = m.predict(torch.tensor([[-4.0], [4.0]])).epistemic_var.sqrt().mean()
    assert far > 2 * on_data
