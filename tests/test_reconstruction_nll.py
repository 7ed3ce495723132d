"""``reconstruction_nll`` means one thing in the AE, the VAE and the Bayesian AE: -log p(x | the
point reconstruction), nats per example, nothing sampled; the sampled terms have other names."""

from __future__ import annotations

import pytest
import torch

from vbayes.layers.sampling import sampling_mode
from vbayes.models import AE, VAE, BayesianAE

SHAPE = (1, 4, 4)


@pytest.mark.parametrize("cls", [AE, VAE, BayesianAE])
def test_reconstruction_nll_is_the_nll_of_reconstruct_and_deterministic(cls) -> None:
    torch.manual_seed(0)
    model = cls("mlp", SHAPE, latent=2, hidden=8)
    x = torch.bernoulli(torch.full((5, *SHAPE), 0.5))
    first, second = model.reconstruction_nll(x), model.reconstruction_nll(x)
    assert first.shape == (5,) and bool((first > 0).all())
    torch.testing.assert_close(first, second)  # nothing sampled
    mean = model.reconstruct(x).clamp(1e-6, 1 - 1e-6)
    bernoulli = -(x * mean.log() + (1 - x) * (1 - mean).log()).flatten(1).sum(1)
    torch.testing.assert_close(first, bernoulli.detach(), atol=1e-4, rtol=1e-4)


def test_the_sampled_terms_are_named_apart() -> None:
    torch.manual_seed(0)
    bae = BayesianAE("mlp", SHAPE, latent=2, hidden=8, posterior_std_init=0.5)
    x = torch.bernoulli(torch.full((5, *SHAPE), 0.5))
    draws = torch.stack([bae.sampled_reconstruction_nll(x) for _ in range(3)])
    assert draws.std(0).min() > 0  # a fresh weight sample each call
    with sampling_mode(bae, "mean"):
        torch.testing.assert_close(bae.sampled_reconstruction_nll(x), bae.reconstruction_nll(x))
    vae = VAE("mlp", SHAPE, latent=2, hidden=8)
    nll, _ = vae.loss_terms(x)  # one z ~ q(z|x): the ELBO's reconstruction term, not reconstruction_nll
    assert nll.shape == (5,)
