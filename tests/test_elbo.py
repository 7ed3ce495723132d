"""elbo_loss against a hand-written ELBO: weight KL / N (global), latent KL per example (local)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

import vbayes
from vbayes import layers as L
from vbayes.layers.heads import StochasticGaussian
from vbayes.layers.base import BayesianModule
from vbayes.layers.priors import Normal

N = 60_000
PRIOR_SCALE = 0.5


def _net(seed: int = 0) -> nn.Sequential:
    """Bayesian layers (weight KL) around Gaussian stochastic hidden units (latent KL), float64."""
    torch.manual_seed(seed)
    return nn.Sequential(
        L.LinearReparam(4, 6, prior=Normal(0.0, PRIOR_SCALE)),
        nn.Tanh(),
        StochasticGaussian(6, 3),
        L.LinearFlipout(3, 1, prior=Normal(0.0, PRIOR_SCALE)),
    ).double()


def _hand_written_negative_elbo(net: nn.Sequential, h: torch.Tensor, nll: torch.Tensor) -> torch.Tensor:
    """mean nll + KL(q(w) || p(w)) / N + mean_i KL(q(z_i | x_i) || N(0, I)), from first principles.

    ``h`` is the input the stochastic layer saw in the forward pass that produced ``nll``.
    """
    prior = D.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(PRIOR_SCALE, dtype=torch.float64))
    weight_kl = sum(
        D.kl_divergence(D.Normal(layer.weight_mu, layer.weight_std), prior).sum()
        + D.kl_divergence(D.Normal(layer.bias_mu, layer.bias_std), prior).sum()
        for layer in (net[0], net[3])
    )
    stoch = net[2]
    out = F.linear(h, stoch.proj.weight, stoch.proj.bias)
    mu, logvar = out[:, : stoch.latent], out[:, stoch.latent :]
    latent_kl = D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), D.Normal(0.0, 1.0)).sum(-1)  # (B,)
    return nll.mean() + weight_kl / N + latent_kl.mean()


def _forward(net: nn.Sequential, batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-example nll (B,), input of the stochastic layer (B, 6)) of one forward pass."""
    seen = []
    hook = net[2].register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 4, generator=g, dtype=torch.float64)
    y = torch.randn(batch, generator=g, dtype=torch.float64)
    nll = 0.5 * (net(x)[:, 0] - y) ** 2
    hook.remove()
    return nll, seen[0]


def test_elbo_loss_matches_the_hand_written_elbo_value_and_gradient() -> None:
    net = _net()
    nll, h = _forward(net)
    loss = vbayes.elbo_loss(nll, net, dataset_size=N)
    ref = _hand_written_negative_elbo(net, h, nll)
    torch.testing.assert_close(loss, ref)  # float64 defaults: rtol 1e-7, atol 1e-7
    params = [p for p in net.parameters()]
    grads = torch.autograd.grad(loss, params, retain_graph=True)
    ref_grads = torch.autograd.grad(ref, params)
    for (name, _), a, b in zip(net.named_parameters(), grads, ref_grads):
        torch.testing.assert_close(a, b, msg=lambda m, name=name: f"{name}: {m}")
    # the latent KL is a sizeable part of the bound here: dividing it by N would be caught
    latent_share = float(net[2].last_kl.detach().mean())
    assert latent_share > 0.05 * float(loss.detach())


def test_latent_kl_is_per_example_whatever_the_dataset_size() -> None:
    # the reproduction: no weight KL, so N must not enter at all
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), StochasticGaussian(6, 2), nn.Linear(2, 1))
    x, y = torch.randn(32, 4), torch.randn(32)
    nll = 0.5 * (net(x)[:, 0] - y) ** 2
    expected = nll.mean() + net[1].last_kl.mean()
    for n in (10, 60_000):
        torch.testing.assert_close(vbayes.elbo_loss(nll, net, dataset_size=n), expected)


def test_global_and_local_kl_split_the_model_kl() -> None:
    net = _net()
    nll, _ = _forward(net, batch=20)
    total = vbayes.kl_divergence(net)  # unchanged meaning: every module's KL, summed as it is
    weights = net[0].kl_divergence() + net[3].kl_divergence()
    torch.testing.assert_close(vbayes.global_kl(net), weights)
    torch.testing.assert_close(vbayes.local_kl(net), net[2].last_kl.mean())
    torch.testing.assert_close(total, vbayes.global_kl(net) + 20 * vbayes.local_kl(net))
    # a model of weights only: global == the old sum, local == 0, elbo_loss as before
    only = nn.Sequential(L.LinearReparam(3, 2))
    only(torch.randn(5, 3))
    torch.testing.assert_close(vbayes.global_kl(only), vbayes.kl_divergence(only))
    assert float(vbayes.local_kl(only)) == 0.0
    nll = torch.tensor([1.0, 2.0, 4.0, 0.5, 0.25])
    torch.testing.assert_close(vbayes.elbo_loss(nll, only, 100), nll.mean() + vbayes.kl_divergence(only) / 100)


def test_example_kl_sums_everything_but_the_first_dimension() -> None:
    layer = StochasticGaussian(None, 2)
    g = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(4, 5, 2, generator=g), torch.randn(4, 5, 2, generator=g)
    layer(mu=mu, logvar=logvar)
    ref = D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), D.Normal(0.0, 1.0)).sum((1, 2))
    torch.testing.assert_close(layer.example_kl(), ref)
    torch.testing.assert_close(layer.example_kl().sum(), layer.kl_divergence())
    layer(mu=mu[0, 0], logvar=logvar[0, 0])  # one unbatched example
    assert layer.example_kl().shape == (1,)
    with pytest.raises(RuntimeError, match="before any forward pass"):
        StochasticGaussian(None, 2).example_kl()
    with pytest.raises(TypeError, match="only a 'local'"):
        L.LinearReparam(2, 2).example_kl()


def test_elbo_loss_rejects_what_it_cannot_score() -> None:
    net = _net()
    nll, _ = _forward(net, batch=8)
    with pytest.raises(ValueError, match="nll must be a tensor.*got list"):
        vbayes.elbo_loss(nll.tolist(), net, N)
    with pytest.raises(ValueError, match="nll must be a tensor.*got float"):
        vbayes.elbo_loss(1.5, net, N)
    with pytest.raises(ValueError, match="floating-point"):
        vbayes.elbo_loss(torch.ones(8, dtype=torch.long), net, N)
    with pytest.raises(ValueError, match="nll is empty"):
        vbayes.elbo_loss(nll[:0], net, N)
    with pytest.raises(ValueError, match="dataset_size must be a positive int"):
        vbayes.elbo_loss(nll, net, 0)
    # a latent KL from another batch than the nll's
    with pytest.raises(ValueError, match=r"nll holds 4 examples but the last forward pass of 2 saw 8"):
        vbayes.elbo_loss(nll[:4], net, N)
    vbayes.elbo_loss(nll.mean(), net, N)  # a 0-dim batch mean carries no batch size to check


def test_kl_scope_must_be_global_or_local() -> None:
    class Odd(BayesianModule):
        kl_scope = "per-batch"

        def kl_divergence(self) -> torch.Tensor:
            return torch.zeros(())

    with pytest.raises(ValueError, match="kl_scope must be one of"):
        vbayes.kl_divergence(nn.Sequential(Odd()))
