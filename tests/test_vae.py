"""VAE and AE: KL and loss against torch.distributions, shapes, training on real digits, IWAE >= ELBO."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

import vbayes
from vbayes.data import fixed_binarization, load
from vbayes.models import AE, VAE


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def test_forward_kl_matches_torch_distributions():
    torch.manual_seed(0)
    model = VAE("mlp", (1, 8, 8), latent=3, hidden=16)
    x = torch.bernoulli(torch.rand(5, 1, 8, 8))
    out = model(x)
    ref = kl_divergence(Normal(out.mu, torch.exp(0.5 * out.logvar)), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(out.kl, ref)
    torch.testing.assert_close(vbayes.kl_divergence(model), ref.sum())
    assert out.output.shape == (5, 1, 8, 8) and out.z.shape == (5, 3)


def test_loss_is_the_negative_elbo_from_torch_distributions():
    torch.manual_seed(1)
    model = VAE("mlp", (1, 8, 8), latent=2, hidden=16, beta=0.7)
    x = torch.bernoulli(torch.rand(6, 1, 8, 8))
    loss = model.loss(x, generator=torch.Generator().manual_seed(5))
    # recompute with torch.distributions and the same noise
    mu, logvar = model.encode(x)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
    z = mu + torch.exp(0.5 * logvar) * eps
    ll = Bernoulli(logits=model.decode(z)).log_prob(x).flatten(1).sum(1)
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(loss, (0.7 * kl - ll).mean())
    elbo = model.elbo(x, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(elbo, ll - kl)
    no_kl = model.loss(x, generator=torch.Generator().manual_seed(5), kl_weight=0.0)
    torch.testing.assert_close(no_kl, -ll.mean())


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_shapes_and_gradients(arch, likelihood):
    torch.manual_seed(2)
    model = VAE(arch, (1, 8, 8), latent=4, hidden=32, likelihood=likelihood)
    x = torch.rand(3, 1, 8, 8)
    x = torch.bernoulli(x) if likelihood == "bernoulli" else x
    model.loss(x).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.sample(7).shape == (7, 1, 8, 8)
    assert model.reconstruct(x).shape == (3, 1, 8, 8)
    assert model.iwae_log_likelihood(x, k=9, chunk=4).shape == (3,)
    means = model.decode_mean(torch.zeros(2, 4))
    assert torch.all((means >= 0) & (means <= 1))  # sigmoid means for both likelihoods
    ae = AE(arch, (1, 8, 8), latent=4, hidden=32, likelihood=likelihood)
    assert ae.encode(x).shape == (3, 4) and ae(x).shape == (3, 1, 8, 8)


def test_gaussian_std_learned_or_fixed():
    learned = VAE("mlp", (1, 8, 8), latent=2, hidden=8, likelihood="gaussian")
    fixed = VAE("mlp", (1, 8, 8), latent=2, hidden=8, likelihood="gaussian", gaussian_std=0.2)
    assert learned.likelihood.learned and not fixed.likelihood.learned
    assert float(learned.likelihood.std().detach()) == pytest.approx(0.1, rel=1e-5)
    x = torch.rand(4, 1, 8, 8)
    learned.loss(x).backward()
    assert learned.likelihood.raw_std is not None and learned.likelihood.raw_std.grad is not None
    # fixed std: reconstruction NLL equals the Normal log-density with that scale
    mu, _ = fixed.encode(x)
    ref = -Normal(fixed.decode(mu), 0.2).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(fixed.reconstruction_nll(x), ref)


def test_bad_arguments():
    with pytest.raises(ValueError, match="latent"):
        VAE(latent=0)
    with pytest.raises(ValueError, match="arch"):
        VAE(arch="rnn")
    with pytest.raises(ValueError, match="likelihood"):
        VAE(likelihood="poisson")
    with pytest.raises(ValueError, match="divisible by 4"):
        VAE(arch="conv", image_shape=(1, 10, 10))
    with pytest.raises(ValueError, match="gaussian_std"):
        VAE(likelihood="bernoulli", gaussian_std=0.1)
    with pytest.raises(ValueError, match="together"):
        VAE(encoder=torch.nn.Flatten())


def test_ae_loss_is_reconstruction_nll_with_the_same_networks():
    torch.manual_seed(3)
    ae = AE("mlp", (1, 8, 8), latent=2, hidden=16)
    vae = VAE("mlp", (1, 8, 8), latent=2, hidden=16)
    x = torch.bernoulli(torch.rand(4, 1, 8, 8))
    ref = -Bernoulli(logits=ae(x)).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(ae.reconstruction_nll(x), ref)
    torch.testing.assert_close(ae.loss(x), ref.mean())
    # same networks: the VAE has exactly L more outputs (the log-variances) in its code layer
    n_ae = sum(p.numel() for p in ae.parameters())
    n_vae = sum(p.numel() for p in vae.parameters())
    assert n_vae - n_ae == 2 * (16 + 1)
    assert vbayes.kl_divergence(ae).item() == 0.0


def _train(model, x, steps=300, lr=3e-3, seed=0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (64,))
        loss = model.loss(torch.bernoulli(x[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_training_on_digits_improves_and_iwae_is_above_the_elbo(digits):
    x_test = fixed_binarization(digits.x_test[:200], seed=0)
    torch.manual_seed(4)
    model = VAE("mlp", (1, 8, 8), latent=4, hidden=64)
    with torch.no_grad():
        before = -model.elbo(x_test).mean().item()
    _train(model, digits.x_train)
    with torch.no_grad():
        draws = torch.stack([model.elbo(x_test) for _ in range(20)])  # (20, N)
    elbo = draws.mean(0)  # per-example ELBO, 20-sample average
    after = -elbo.mean().item()
    assert after < before - 5.0, (before, after)  # real learning, not noise
    iw = model.iwae_log_likelihood(x_test, k=200, chunk=64, generator=torch.Generator().manual_seed(1))
    gap = iw - elbo
    # IWAE >= ELBO in expectation; the mean gap must exceed 5 standard errors of its estimate
    se = gap.std() / math.sqrt(gap.numel())
    assert gap.mean() > 5 * se, (gap.mean(), se)
    assert torch.all(torch.isfinite(iw))


def test_same_seed_repeats_exactly():
    x = torch.bernoulli(torch.rand(8, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    losses = []
    for _ in range(2):
        torch.manual_seed(9)
        model = _train(VAE("mlp", (1, 8, 8), latent=2, hidden=16), x, steps=5)
        losses.append(model.loss(x, generator=torch.Generator().manual_seed(2)).item())
    assert losses[0] == losses[1]
