"""The importance-weighted estimate of log p(x) on a linear-Gaussian VAE, where log p(x) is exact.

Model: p(z) = N(0, I_L), p(x|z) = N(W z + b, s^2 I_D), so p(x) = N(b, W W^T + s^2 I_D).
With orthogonal columns of W the true posterior is diagonal, so the VAE's encoder can hold it
exactly; a perturbed encoder gives a proper importance-sampling problem.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import MultivariateNormal

from vbayes.models import VAE

D, L, S = 6, 2, 0.5


def linear_gaussian(perturb: bool) -> tuple[VAE, torch.Tensor, torch.Tensor]:
    """A float64 linear-Gaussian VAE, its W and b; the encoder is the posterior (perturbed or not)."""
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(D, L, generator=gen, dtype=torch.float64))
    w = q * torch.tensor([2.0, 0.7], dtype=torch.float64)  # orthogonal columns: W^T W diagonal
    b = torch.randn(D, generator=gen, dtype=torch.float64) * 0.3
    decoder = nn.Sequential(nn.Linear(L, D), nn.Unflatten(1, (1, 1, D)))
    model = VAE(likelihood="gaussian", gaussian_std=S, latent=L, image_shape=(1, 1, D),
                encoder=nn.Flatten(), features=D, decoder=decoder).double()
    # exact posterior: Sigma = (I + W^T W / s^2)^-1 (diagonal), mean = Sigma W^T (x - b) / s^2
    sigma = torch.linalg.inv(torch.eye(L, dtype=torch.float64) + w.T @ w / S**2)
    a = sigma @ w.T / S**2  # (L, D)
    logvar = torch.log(torch.diagonal(sigma))
    if perturb:
        a = a * 1.15
        logvar = logvar + math.log(1.6)  # wider than the posterior: finite weight variance
    with torch.no_grad():
        decoder[0].weight.copy_(w)
        decoder[0].bias.copy_(b)
        proj = model.latent_layer.proj
        proj.weight.zero_()
        proj.weight[:L] = a
        proj.bias[:L] = -a @ b
        proj.bias[L:] = logvar
    return model, w, b


def exact_log_px(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    cov = w @ w.T + S**2 * torch.eye(D, dtype=torch.float64)
    return MultivariateNormal(b, cov).log_prob(x.flatten(1))


def data(n: int, w: torch.Tensor, b: torch.Tensor, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, L, generator=gen, dtype=torch.float64)
    x = z @ w.T + b + S * torch.randn(n, D, generator=gen, dtype=torch.float64)
    return x.reshape(n, 1, 1, D)


def test_exact_posterior_makes_every_weight_equal_log_px():
    model, w, b = linear_gaussian(perturb=False)
    x = data(5, w, b)
    exact = exact_log_px(x, w, b)
    for k in (1, 13):
        est = model.iwae_log_likelihood(x, k=k, chunk=5, generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(est, exact, rtol=0, atol=1e-9)


def test_iw_estimate_converges_to_exact_log_px():
    model, w, b = linear_gaussian(perturb=True)
    x0 = data(3, w, b)
    exact = exact_log_px(x0, w, b)  # (3,)
    reps, k = 40, 2000
    x = x0.repeat_interleave(reps, dim=0)  # (3*reps, ...): independent K-sample estimates per point
    est = model.iwae_log_likelihood(x, k=k, chunk=400, generator=torch.Generator().manual_seed(3)).reshape(3, reps)
    sd = est.std(dim=1)  # spread of one K-sample estimate
    # the estimator's bias is ~ -sd^2 / 2 (delta method); the mean's noise is sd / sqrt(reps)
    tol = 5 * sd / math.sqrt(reps) + sd.pow(2)
    assert torch.all((est.mean(1) - exact).abs() < tol), (est.mean(1), exact, tol)
    # the perturbed encoder is a real importance-sampling problem: K=1 is visibly worse
    many = 2000
    x1 = x0.repeat_interleave(many, dim=0)
    one = model.iwae_log_likelihood(x1, k=1, generator=torch.Generator().manual_seed(4)).reshape(3, many)
    assert torch.all(exact - one.mean(1) > 5 * one.std(1) / math.sqrt(many))


def test_iw_estimate_is_above_the_elbo_and_below_log_px():
    model, w, b = linear_gaussian(perturb=True)
    x = data(50, w, b, seed=5)
    exact = exact_log_px(x, w, b)
    # analytic ELBO of the linear-Gaussian model: E_q log N(x | Wz + b, s^2) - KL(q || p)
    mu, logvar = model.encode(x)
    mean = mu @ w.T + b
    resid = (x.flatten(1) - mean).pow(2).sum(1)
    trace = (w.pow(2) @ logvar.exp().T).sum(0)  # tr(W diag(v) W^T) per example
    exp_ll = -0.5 * (resid + trace) / S**2 - D * math.log(S) - 0.5 * D * math.log(2 * math.pi)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    elbo = (exp_ll - kl).detach()
    # the model's one-sample ELBO is unbiased for it
    draws = torch.stack([model.elbo(x).detach() for _ in range(400)])
    assert torch.all((draws.mean(0) - elbo).abs() < 5 * draws.std(0) / math.sqrt(400))
    iw = model.iwae_log_likelihood(x, k=500, generator=torch.Generator().manual_seed(6))
    assert torch.all(elbo < exact)
    assert (iw - elbo).mean() > 0.5 * (exact - elbo).mean()  # most of the gap closed
    assert iw.mean() <= exact.mean() + 0.05
