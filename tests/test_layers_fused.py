"""The fused sampling + KL autograd Function against plain autograd, and its helpers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import distributions as D

import vbayes
from vbayes.layers import LinearFlipout, LinearLRT, LinearReparam
from vbayes.layers._fused import PosteriorSample, flip_signs, softplus_inverse, sum_log
from vbayes.layers.priors import Normal


def _params(shape=(4, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(shape, dtype=torch.float64, generator=g).requires_grad_()
    rho = (torch.randn(shape, dtype=torch.float64, generator=g) - 1).requires_grad_()
    eps = torch.randn(shape, dtype=torch.float64, generator=g)
    return mu, rho, eps


@pytest.mark.parametrize("mode", ["weight", "delta", "var"])
@pytest.mark.parametrize("loc, scale", [(0.0, 1.0), (0.3, 0.5), (0.0, None)])
def test_gradcheck(mode, loc, scale):
    mu, rho, eps = _params()

    def f(mu, rho):
        return PosteriorSample.apply(mode, loc, scale, None, (eps.clone(),), mu, rho)

    assert torch.autograd.gradcheck(f, (mu, rho))


@pytest.mark.parametrize("mode", ["weight", "delta", "var"])
def test_matches_plain_autograd(mode):
    mu, rho, eps = _params((6, 5), seed=1)
    prior = Normal(0.2, 0.7)
    out, kl = PosteriorSample.apply(mode, 0.2, 0.7, None, (eps.clone(),), mu, rho)
    sigma = F.softplus(rho)
    ref_out = {"weight": mu + sigma * eps, "delta": sigma * eps, "var": sigma**2}[mode]
    ref_kl = D.kl_divergence(D.Normal(mu, sigma), D.Normal(prior.loc, prior.scale)).sum()
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(kl, ref_kl)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum() + 0.37 * kl, (mu, rho))
    ref = torch.autograd.grad((ref_out * g).sum() + 0.37 * ref_kl, (mu, rho))
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b)


def test_sum_log_matches_log_sum_and_falls_back():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1001, generator=g) * 5 + 1e-3  # not a multiple of 8
    torch.testing.assert_close(sum_log(x), x.double().log().sum(), rtol=1e-6, atol=1e-3)
    big = torch.rand(10_001, generator=g) * 5 + 1e-3  # the blocked-product path, with a tail
    torch.testing.assert_close(sum_log(big), big.double().log().sum(), rtol=1e-6, atol=1e-3)
    tiny = torch.full((8192,), 1e-9)  # block products underflow float32: exact fallback
    torch.testing.assert_close(sum_log(tiny), torch.tensor(8192 * math.log(1e-9), dtype=torch.float64))
    x64 = x.double()
    torch.testing.assert_close(sum_log(x64), x64.log().sum())


def test_softplus_inverse_round_trip():
    sigma = torch.tensor([1e-8, 1e-3, 0.5, 3.0, 30.0], dtype=torch.float64)
    torch.testing.assert_close(F.softplus(softplus_inverse(sigma)), sigma)


def test_flip_signs_are_fair_and_independent():
    s = flip_signs(200_000, torch.float32, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert s.shape == (200_000,) and set(s.unique().tolist()) == {-1.0, 1.0}
    se = 1 / math.sqrt(s.numel())
    assert abs(s.mean().item()) < 5 * se
    assert abs((s[1:] * s[:-1]).mean().item()) < 5 * se  # neighbouring bits uncorrelated
    assert abs((s[64:] * s[:-64]).mean().item()) < 5 * se  # same bit of neighbouring words
    assert abs((s[8:] * s[:-8]).mean().item()) < 5 * se  # same bit of neighbouring bytes
    s2 = flip_signs(1000, torch.float64, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert torch.equal(s2, s[:1000].double())  # reproducible under a seed


@pytest.mark.parametrize("cls", [LinearReparam, LinearFlipout, LinearLRT])
def test_layer_gradients_match_unfused_reference(cls):
    """Whole layer: the fused step's gradients equal a plain-autograd implementation of the
    same estimator fed with the same noise (float64)."""
    torch.manual_seed(0)
    layer = cls(5, 4, dtype=torch.float64, prior=Normal(0.0, 0.5))
    with torch.no_grad():
        layer.weight_rho.uniform_(-4, -1)
        layer.bias_rho.uniform_(-4, -1)
    x = torch.randn(7, 5, dtype=torch.float64)
    gen_state = torch.get_rng_state()
    y = layer(x)
    loss = (y**2).sum() + 0.1 * layer.kl_divergence()
    grads = torch.autograd.grad(loss, list(layer.parameters()))
    # replay the same random stream by hand
    torch.set_rng_state(gen_state)
    mw, rw, mb, rb = layer.weight_mu, layer.weight_rho, layer.bias_mu, layer.bias_rho
    sw, sb = F.softplus(rw), F.softplus(rb)
    if cls is LinearLRT:
        mean = F.linear(x, mw, mb)
        var = F.linear(x**2, sw**2, sb**2)
        ref = mean + var.sqrt() * torch.randn(mean.shape, dtype=torch.float64)
    else:
        ew = torch.randn(mw.shape, dtype=torch.float64)
        eb = torch.randn(mb.shape, dtype=torch.float64)
        if cls is LinearReparam:
            ref = F.linear(x, mw + sw * ew, mb + sb * eb)
        else:
            signs = flip_signs(7 * 5 + 7 * 4, torch.float64, x.device)
            s_in, s_out = signs[:35].view(7, 5), signs[35:].view(7, 4)
            ref = F.linear(x, mw, mb) + F.linear(x * s_in, sw * ew, sb * eb) * s_out
    torch.testing.assert_close(y, ref)
    prior = D.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
    kl = D.kl_divergence(D.Normal(mw, sw), prior).sum() + D.kl_divergence(D.Normal(mb, sb), prior).sum()
    ref_grads = torch.autograd.grad((ref**2).sum() + 0.1 * kl, [mw, rw, mb, rb])
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)
    assert vbayes.kl_divergence(layer).item() == pytest.approx(kl.item(), rel=1e-12)


@pytest.mark.parametrize("want_sq", [True, False])
def test_fast_softplus_path_matches_softplus(want_sq):
    """CPU float32 tensors of >= 4096 elements take the exp + log1p path; it equals F.softplus to
    about 1 ulp, also past the threshold 20, and falls back to F.softplus where exp overflows."""
    from vbayes.layers._fused import _FAST_SOFTPLUS_MIN, _sigma

    rho = torch.linspace(-40.0, 60.0, 2 * _FAST_SOFTPLUS_MIN).view(64, -1)
    sigma, sq = _sigma(rho, want_sq)
    torch.testing.assert_close(sigma, F.softplus(rho), rtol=3e-7, atol=0.0)
    if want_sq:
        assert sq == pytest.approx(float((sigma.double() ** 2).sum()), rel=1e-5)
    else:
        assert sq is None
    big = rho.clone()
    big[3, 5] = 100.0  # exp(100) overflows float32
    sigma, sq = _sigma(big, want_sq)
    assert torch.equal(sigma, F.softplus(big))
    assert sq is None or math.isfinite(sq)
    nan = rho.clone()
    nan[0, 0] = float("nan")
    assert _sigma(nan, want_sq)[0].isnan().sum() == 1
    small = torch.linspace(-3.0, 3.0, 100, dtype=torch.float32)
    assert torch.equal(_sigma(small, want_sq)[0], F.softplus(small)) and _sigma(small, want_sq)[1] is None


@pytest.mark.parametrize("mode", ["weight", "delta", "var"])
def test_fast_path_gradients_match_plain_autograd_float32(mode):
    """Layer-sized float32 tensors (the fast softplus path) against plain autograd."""
    g = torch.Generator().manual_seed(5)
    mu = (0.1 * torch.randn(80, 64, generator=g)).requires_grad_()
    rho = (torch.randn(80, 64, generator=g) - 4.0).requires_grad_()
    eps = torch.randn(80, 64, generator=g)
    out, kl = PosteriorSample.apply(mode, 0.1, 0.8, None, (eps.clone(),), mu, rho)
    sigma = F.softplus(rho)
    ref_out = {"weight": mu + sigma * eps, "delta": sigma * eps, "var": sigma**2}[mode]
    ref_kl = D.kl_divergence(D.Normal(mu, sigma), D.Normal(0.1, 0.8)).sum()
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(kl, ref_kl, rtol=1e-5, atol=1e-3)
    w = torch.randn(out.shape, generator=g)
    grads = torch.autograd.grad((out * w).sum() + 0.37 * kl, (mu, rho))
    ref = torch.autograd.grad((ref_out * w).sum() + 0.37 * ref_kl, (mu, rho))
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
