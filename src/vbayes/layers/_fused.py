"""Fused sampling + KL of a mean-field Gaussian posterior, with analytic gradients.

One :class:`PosteriorSample` call per parameter tensor and step computes sigma = softplus(rho)
once, draws eps, forms the tensor an estimator needs and, for a ``vbayes.priors.Normal`` prior,
the closed-form KL -- in a handful of elementwise passes. Its backward writes the gradients of
both outputs (the sample and the KL) directly, instead of letting autograd record and replay
~10 elementwise nodes. Between forward and backward it keeps one weight-sized tensor (sigma);
the returned sample is shared with the consumer's saved tensors.

The three outputs kinds (``mode``):

* ``"weight"``: ``mu + sigma * eps`` (Bayes by Backprop);
* ``"delta"``: ``sigma * eps`` (Flipout's shared perturbation);
* ``"var"``: ``sigma ** 2`` (local reparameterization); no eps is drawn.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["PosteriorSample", "sum_log", "softplus_inverse", "flip_signs"]


def softplus_inverse(sigma: Tensor) -> Tensor:
    """rho with softplus(rho) == sigma, stable for every sigma > 0 (same shape)."""
    return sigma + torch.log(-torch.expm1(-sigma))


def sum_log(x: Tensor) -> Tensor:
    """sum(log(x)) of a positive tensor as a 0-dim tensor of ``x.dtype``.

    Multiplies the tensor's 8 (float64: 32) equal slices elementwise and takes the log of the
    products, one pass over ``x`` and 8x (32x) fewer logarithms than ``x.log().sum()``. Falls back
    to the plain sum of logs when a product leaves the safe range (float32 values outside about
    [2e-5, 4e4]). The result is accumulated in float64.
    """
    flat = x.detach().reshape(-1)
    k, lo, hi = (32, 1e-290, 1e290) if x.dtype == torch.float64 else (8, 1e-36, 1e36)
    m = flat.numel() // k
    prods = flat[: m * k].view(k, m).prod(0)
    if m:
        low, high = torch.aminmax(prods)
        if not (float(low) > lo and float(high) < hi):
            return flat.to(torch.float64).log().sum().to(x.dtype)
    total = prods.to(torch.float64).log().sum() + flat[m * k :].to(torch.float64).log().sum()
    return total.to(x.dtype)


def _normal_kl_value(mu: Tensor, sigma: Tensor, loc: float, scale: float) -> Tensor:
    """KL(N(mu, sigma^2) || N(loc, scale^2)) summed over all elements (0-dim, nats)."""
    n = mu.numel()
    flat_mu = mu.detach().reshape(-1)
    flat_sigma = sigma.reshape(-1)
    centred = flat_mu if loc == 0.0 else flat_mu - loc
    quad = torch.dot(flat_sigma, flat_sigma) + torch.dot(centred, centred)
    return quad / (2.0 * scale * scale) - sum_log(sigma) + n * (math.log(scale) - 0.5)


class PosteriorSample(torch.autograd.Function):
    """``(out, kl) = PosteriorSample.apply(mu, rho, eps, mode, loc, scale, generator)``.

    Args:
        mu, rho: posterior parameters, same shape; sigma = softplus(rho).
        eps: standard normal noise of that shape, or ``None`` to draw it (ignored for "var").
        mode: "weight", "delta" or "var" (see the module docstring).
        loc, scale: parameters of a Normal prior, or ``scale=None`` for no closed-form KL
            (then ``kl`` is a constant 0 and the caller computes its own estimate).
        generator: ``torch.Generator`` for eps, or ``None`` for the global one.

    Returns:
        ``out`` of ``mu``'s shape and the 0-dim KL (nats).
    """

    @staticmethod
    def forward(ctx, mu: Tensor, rho: Tensor, eps: Tensor | None, mode: str, loc: float,  # type: ignore[override]
                scale: float | None, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        sigma = F.softplus(rho)
        if mode == "var":
            out = sigma * sigma
        else:
            drawn = eps is None
            if eps is None:
                eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
            if mode == "weight":
                out = torch.addcmul(mu, sigma, eps)
            else:
                out = eps.mul_(sigma) if drawn else sigma * eps
        if scale is None:
            kl = torch.zeros((), dtype=mu.dtype, device=mu.device)
            ctx.mark_non_differentiable(kl)
        else:
            kl = _normal_kl_value(mu, sigma, loc, scale)
        ctx.mode, ctx.loc, ctx.scale = mode, loc, scale
        ctx.save_for_backward(mu, rho, sigma, out)
        return out, kl

    @staticmethod
    def backward(ctx, g_out: Tensor | None, g_kl: Tensor | None):  # type: ignore[override]
        mu, rho, sigma, out = ctx.saved_tensors
        mode, loc, scale = ctx.mode, ctx.loc, ctx.scale
        c = 0.0 if (g_kl is None or scale is None) else float(g_kl)
        grad_mu: Tensor | None = None
        grad_sigma: Tensor | None = None
        if g_out is not None:
            if mode == "weight":
                grad_mu = g_out if c == 0.0 else torch.add(g_out, mu, alpha=c / scale**2)
                grad_sigma = torch.sub(out, mu)  # sigma * eps
            else:  # "delta": out = sigma * eps;  "var": sigma * d(sigma^2)/d(sigma) = 2 out
                grad_sigma = out if mode == "delta" else out * 2.0
            # sigma * dL/dsigma - c, in one pass
            grad_sigma = torch.addcmul(g_out.new_tensor(-c), grad_sigma, g_out,
                                       out=None if grad_sigma is out else grad_sigma)
        if c != 0.0:
            kl_mu_coef = c / scale**2
            if grad_mu is None:
                grad_mu = mu * kl_mu_coef
            if loc != 0.0:
                grad_mu = grad_mu - kl_mu_coef * loc
            if grad_sigma is None:
                grad_sigma = torch.full_like(sigma, -c)
        if grad_sigma is not None:
            # divide once by sigma, add the c sigma / s^2 term, chain through softplus
            grad_sigma.div_(sigma)
            if c != 0.0:
                grad_sigma.add_(sigma, alpha=c / scale**2)
            grad_sigma.mul_(torch.sigmoid(rho))
        return grad_mu, grad_sigma, None, None, None, None, None


def flip_signs(n: int, dtype: torch.dtype, device: torch.device,
               generator: torch.Generator | None = None) -> Tensor:
    """``n`` independent fair random signs (+1 / -1) of ``dtype``, shape ``(n,)``.

    Uses 56 bits of each 64-bit random word, so it draws ``ceil(n / 56)`` random numbers rather
    than ``n`` (a per-element ``bernoulli_`` would cost ~30x more).
    """
    words = -(-n // 56)
    raw = torch.empty(words, dtype=torch.int64, device=device).random_(generator=generator)
    bytes_ = raw.view(torch.uint8).view(words, 8)[:, :7]
    shifts = torch.arange(8, dtype=torch.uint8, device=device)
    bits = bytes_.unsqueeze(-1).bitwise_right_shift(shifts).bitwise_and_(1)
    return bits.reshape(-1)[:n].to(dtype).mul_(2.0).sub_(1.0)
