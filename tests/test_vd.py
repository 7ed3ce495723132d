"""The ``vd`` method (variational dropout, Kingma et al. 2015; sparse VD, Molchanov et al. 2017):
pruning on Bayesian linear regression with a sparse truth against least squares, the Kingma cap,
the training loss and the final objective against hand computations, test-time pruning, the
sparsity figures, classification against scikit-learn's logistic regression, and the options."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vbayes.errors import VBayesError
from vbayes.methods import get_method

NOISE = 0.5
W_TRUE = torch.tensor([2.0, -1.5, 1.0, 0.0, 0.0, 0.0])  # features 3, 4, 5 are irrelevant
RELEVANT, IRRELEVANT = slice(0, 3), slice(3, 6)


def _sparse_regression(n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=gen)
    return x, x @ W_TRUE + 0.3 + NOISE * torch.randn(n, generator=gen)


def _least_squares(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares coefficients ``w_1..w_D, b`` and their standard errors at the known noise."""
    design = torch.cat([x, torch.ones(x.shape[0], 1)], 1).double()
    coef = torch.linalg.solve(design.T @ design, design.T @ y.double())
    se = (NOISE**2 * torch.diagonal(torch.linalg.inv(design.T @ design))).sqrt()
    return coef, se


def _hand_log_alpha(layer) -> torch.Tensor:
    return torch.clamp(layer.log_sigma2 - torch.log(layer.theta**2 + 1e-8), -10.0, layer.log_alpha_max).detach()


def _hand_kl_molchanov(log_alpha: torch.Tensor) -> torch.Tensor:
    """The paper's approximation written out: -KL = k1 sigmoid(k2 + k3 la) - 0.5 log1p(e^-la) - k1."""
    k1, k2, k3 = 0.63576, 1.87320, 1.48695
    neg = k1 * torch.sigmoid(k2 + k3 * log_alpha) - 0.5 * torch.log1p(torch.exp(-log_alpha)) - k1
    return -neg.sum()


@pytest.fixture(scope="module")
def fits():
    x, y = _sparse_regression()
    kw = dict(hidden=(), noise="fixed", noise_std=NOISE, steps=3000, seed=0)
    return x, y, {v: get_method("vd", variant=v, **kw).fit(x, y) for v in ("sparse", "kingma")}


def test_sparse_vd_prunes_the_irrelevant_weights_and_keeps_least_squares_for_the_others(fits) -> None:
    x, y, methods = fits
    m = methods["sparse"]
    layer = m.svd_layers()[0]
    log_alpha = _hand_log_alpha(layer)[0]
    assert (log_alpha[IRRELEVANT] > 3).all(), log_alpha
    assert (log_alpha[RELEVANT] < 0).all(), log_alpha
    coef, se = _least_squares(x, y)
    theta = torch.cat([layer.theta.detach()[0], layer.bias.detach()]).double()
    keep = [0, 1, 2, 6]  # the relevant weights and the bias
    assert ((theta[keep] - coef[keep]).abs() < 0.25 * se[keep]).all(), (theta, coef, se)
    assert (theta[3:6].abs() < 0.1 * se[3:6]).all()  # shrunk to ~0, well below their LS values
    assert m.info["sparsity"] == pytest.approx(0.5) and m.info["compression"] == pytest.approx(2.0)
    assert m.info["kept_per_layer"] == [0.5] and m.info["n_weights"] == 6


def test_kingma_variant_caps_log_alpha_at_zero_and_prunes_nothing(fits) -> None:
    _, _, methods = fits
    m = methods["kingma"]
    layer = m.svd_layers()[0]
    log_alpha = layer.log_alpha.detach()[0]
    assert log_alpha.max() <= 0.0
    assert (log_alpha[IRRELEVANT] == 0.0).all()  # pushed to the cap
    assert (log_alpha[RELEVANT] < -5).all()
    c1, c2, c3 = 1.16145124, -1.50204118, 0.58629921
    a = log_alpha.double().exp()
    hand = -(0.5 * log_alpha.double() + c1 * a + c2 * a**2 + c3 * a**3).sum()
    assert m.info["kl"] == pytest.approx(float(hand), abs=1e-4)
    assert m.info["sparsity"] == 0.0 and m.info["compression"] == 1.0


@pytest.mark.parametrize("variant", ["sparse", "kingma"])
def test_final_objective_is_the_exact_expected_nll_plus_kl_over_n(fits, variant: str) -> None:
    """For a linear model with known noise E_q[(y - w.x - b)^2] = (y - theta.x - b)^2 + x^2 . var."""
    x, y, methods = fits
    m = methods[variant]
    layer = m.svd_layers()[0]
    la = _hand_log_alpha(layer).double()
    theta, bias = layer.theta.detach().double(), layer.bias.detach().double()
    var = la.exp() * theta**2
    resid = y.double() - (x.double() @ theta.T + bias)[:, 0]
    nll = 0.5 * math.log(2 * math.pi * NOISE**2) + (resid**2 + (x.double() ** 2 @ var.T)[:, 0]) / (2 * NOISE**2)
    kl = m.info["kl"] if variant == "kingma" else float(_hand_kl_molchanov(la))
    exact = float(nll.mean()) + kl / x.shape[0]
    assert abs(m.info["objective"] - exact) < 5 * m.info["objective_se"] + 1e-6, (m.info["objective"], exact)
    assert "elbo" not in m.info and "not a bound" in m.info["objective_note"]
    with pytest.raises(VBayesError, match="no ELBO"):
        m.elbo(x, y)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_training_loss_is_nll_plus_scheduled_kl_over_n_by_hand(task: str) -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(12, 3, generator=gen)
    y = torch.randint(0, 3, (12,), generator=gen) if task == "classification" else torch.randn(12, generator=gen)
    m = get_method("vd", task=task, hidden=(4,), steps=1, seed=0).fit(x, y)
    l1, l2 = m.svd_layers()
    with torch.no_grad():
        for layer in (l1, l2):
            layer.log_sigma2.uniform_(-4.0, 1.0, generator=gen)
    n, steps = 500, 200  # the paper's epochs 5 and 20 of 200 are steps 5 and 20 of 200 here
    for step, weight in [(3, 0.0), (10, 1 / 3), (20, 1.0), (150, 1.0)]:
        torch.manual_seed(11)
        got = m.loss(x, y, step, steps, n)
        torch.manual_seed(11)  # the same normal draws, in the layers' order, by hand
        s1 = F.linear(x * x, _hand_log_alpha(l1).exp() * l1.theta.detach() ** 2)
        h = F.relu(F.linear(x, l1.theta.detach(), l1.bias.detach()) + s1.sqrt() * torch.randn(s1.shape))
        s2 = F.linear(h * h, _hand_log_alpha(l2).exp() * l2.theta.detach() ** 2)
        out = F.linear(h, l2.theta.detach(), l2.bias.detach()) + s2.sqrt() * torch.randn(s2.shape)
        if task == "classification":
            nll = -torch.log_softmax(out, 1)[torch.arange(12), y].mean()
        else:  # heteroscedastic: the second output is the noise's softplus pre-activation
            mu, sigma = m.head(out)
            nll = (0.5 * torch.log(2 * math.pi * sigma**2) + (y - mu) ** 2 / (2 * sigma**2)).mean()
        kl = _hand_kl_molchanov(_hand_log_alpha(l1)) + _hand_kl_molchanov(_hand_log_alpha(l2))
        torch.testing.assert_close(got.detach(), nll + weight * kl / n, rtol=1e-5, atol=1e-6)


def test_prediction_uses_the_pruned_network(fits) -> None:
    x, _, methods = fits
    m = methods["sparse"]
    layer = m.svd_layers()[0]
    xt = torch.randn(9, 6)
    moved = xt.clone()
    moved[:, IRRELEVANT] += 100.0  # inputs of pruned weights only
    p, q = m.predict(xt), m.predict(moved)
    assert p.mu.shape == (100, 9)
    assert torch.equal(p.mu, q.mu)  # the pruned weights contribute neither mean nor variance
    moved[:, 0] += 1.0
    assert not torch.equal(m.predict(moved).mu, p.mu)
    m.options["predict"] = "mean"
    try:
        mean = m.predict(xt)
    finally:
        m.options["predict"] = "sample"
    assert mean.mu.shape == (1, 9)
    w = layer.theta.detach() * (_hand_log_alpha(layer) <= 3)
    torch.testing.assert_close(mean.mu[0], (xt @ w.T + layer.bias.detach())[:, 0])
    torch.testing.assert_close(mean.sigma, torch.full_like(mean.sigma, NOISE))


def test_classification_matches_logistic_regression_and_prunes_noise_features() -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(600, 5, generator=gen)
    logits = torch.stack([torch.zeros(600), 3 * x[:, 0], -3 * x[:, 1]], 1)  # features 2..4 irrelevant
    y = torch.distributions.Categorical(logits=logits).sample()
    train, test = slice(0, 400), slice(400, 600)
    m = get_method("vd", task="classification", hidden=(), steps=2000, seed=0).fit(x[train], y[train])
    acc = float((m.predict(x[test]).probs.mean(0).argmax(1) == y[test]).float().mean())
    ref = sklearn.LogisticRegression(max_iter=1000).fit(x[train].numpy(), y[train].numpy())
    ref_acc = float((torch.as_tensor(ref.predict(x[test].numpy())) == y[test]).float().mean())
    assert acc >= ref_acc - 0.03, (acc, ref_acc)
    mask = m.svd_layers()[0].weight_mask
    assert mask[:, :2].all()  # every weight of a relevant feature is kept
    assert int((~mask[:, 2:]).sum()) >= 6  # most of the 9 weights of the noise features are pruned
    assert m.info["sparsity"] == pytest.approx(float((~mask).float().mean()))


@pytest.mark.parametrize("options, match", [
    ({"variant": "bernoulli"}, "variant must be one of sparse, kingma"),
    ({"predict": "median"}, "predict must be sample or mean"),
    ({"kl_delay": 0.5, "kl_warmup": 0.2}, "kl_delay <= kl_warmup"),
    ({"kl_weight": -1.0}, "kl_weight must be >= 0"),
    ({"objective_samples": 1}, "objective_samples must be >= 2"),
    ({"prune_threshold": math.nan}, "prune_threshold must be a finite number"),
    ({"elbo_samples": 10}, "unknown option"),
])
def test_bad_options_are_one_line_errors(options: dict, match: str) -> None:
    x, y = _sparse_regression(20)
    with pytest.raises(VBayesError, match=match) as err:
        get_method("vd", hidden=(3,), steps=2, **options).fit(x, y)
    assert "\n" not in str(err.value)
