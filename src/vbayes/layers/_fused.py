"""Fused sampling + KL of a mean-field Gaussian posterior, with analytic gradients.

One :class:`PosteriorSample` call per parameter tensor and step computes sigma = softplus(rho)
once, draws eps, forms the tensor an estimator needs and, for a ``vbayes.layers.priors.Normal`` prior,
the closed-form KL -- in a handful of elementwise passes. Its backward writes the gradients of
both outputs (the sample and the KL) directly, instead of letting autograd record and replay
~10 elementwise nodes. Between forward and backward it keeps one weight-sized tensor of its own
(sigma) besides the returned sample, which the consuming op saves anyway; the sample is
written in place over the freshly drawn noise.

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
from torch.autograd.function import once_differentiable

__all__ = ["PosteriorSample", "sum_log", "softplus_inverse", "flip_signs"]


def softplus_inverse(sigma: Tensor) -> Tensor:
    """rho with softplus(rho) == sigma, stable for every sigma > 0 (same shape)."""
    return sigma + torch.log(-torch.expm1(-sigma))


def sum_log(x: Tensor) -> Tensor:
    """sum(log(x)) of a positive tensor, accumulated in float64 (0-dim float64 tensor).

    For large tensors, multiplies the tensor's 8 (float64: 32) equal slices elementwise and
    takes the log of the products: one pass over ``x`` and 8x (32x) fewer logarithms than
    ``x.log().sum()``. Falls back to the plain sum of logs when a product leaves the safe
    range (float32 values outside about [2e-5, 4e4]).
    """
    flat = x.detach().reshape(-1)
    n = flat.numel()
    k, lo, hi = (32, 1e-290, 1e290) if x.dtype == torch.float64 else (8, 1e-36, 1e36)
    m = n // k
    if n < 4096:
        return flat.log().sum(dtype=torch.float64)
    prods = flat[: m * k].view(k, m).prod(0)
    low, high = torch.aminmax(prods)
    if not (float(low) > lo and float(high) < hi):
        return flat.log().sum(dtype=torch.float64)
    total = prods.log().sum(dtype=torch.float64)
    if m * k < n:
        total = total + flat[m * k :].log().sum(dtype=torch.float64)
    return total


def _normal_kl_value(mu: Tensor, sigma: Tensor, loc: float, scale: float,
                     sigma_sq: float | None = None) -> Tensor | float:
    """KL(N(mu, sigma^2) || N(loc, scale^2)) summed over all elements (nats).

    A Python float on CPU (fewer tiny tensor ops), a 0-dim float64 tensor elsewhere (no sync).
    ``sigma_sq``: sum(sigma^2) when the caller has it already (CPU).
    """
    n = mu.numel()
    flat_mu = mu.detach().reshape(-1)
    flat_sigma = sigma.reshape(-1)
    centred = flat_mu if loc == 0.0 else flat_mu - loc
    const = n * (math.log(scale) - 0.5)
    if mu.device.type == "cpu":
        if sigma_sq is None:
            sigma_sq = float(torch.dot(flat_sigma, flat_sigma))
        quad = sigma_sq + float(torch.dot(centred, centred))
        return quad / (2.0 * scale * scale) - float(sum_log(sigma)) + const
    quad = torch.dot(flat_sigma, flat_sigma) + torch.dot(centred, centred)
    return quad.to(torch.float64) / (2.0 * scale * scale) - sum_log(sigma) + const


_FAST_SOFTPLUS_MIN = 4096
"""CPU float32 tensors of at least this many elements take :func:`_sigma`'s exp + log1p path."""


def _sigma(rho: Tensor, want_sq: bool) -> tuple[Tensor, float | None]:
    """sigma = softplus(rho) as a new tensor, and sum(sigma^2) as a float when ``want_sq`` on the fast path.

    On CPU, ``log1p(exp(rho))`` computed in place over ``exp(rho)`` takes about 60% of the time of
    ``F.softplus`` (threshold 20) and agrees with it to 1 ulp for every rho below 88.7; above, exp
    overflows to inf. One reduction over sigma catches that -- the KL's sum(sigma^2) when it is
    wanted anyway, else a max -- and recomputes sigma with ``F.softplus``. Other devices, dtypes
    and small tensors use ``F.softplus`` and return ``None`` for the sum.
    """
    if not (rho.device.type == "cpu" and rho.dtype == torch.float32 and rho.numel() >= _FAST_SOFTPLUS_MIN):
        return F.softplus(rho), None
    sigma = torch.exp(rho).log1p_()
    flat = sigma.reshape(-1)
    check = float(torch.dot(flat, flat)) if want_sq else float(flat.max())
    if check == math.inf:  # exp overflowed (or sigma^2 did): the exact function
        sigma = F.softplus(rho)
        flat = sigma.reshape(-1)
        check = float(torch.dot(flat, flat)) if want_sq else check
    return sigma, (check if want_sq else None)


class PosteriorSample(torch.autograd.Function):
    """``(*outs, kl) = PosteriorSample.apply(mode, loc, scale, generator, eps, mu_1, rho_1, ...)``.

    One autograd node for all parameter tensors of a layer (weight and bias).

    Args:
        mode: "weight", "delta" or "var" (see the module docstring).
        loc, scale: parameters of a Normal prior, or ``scale=None`` for no closed-form KL
            (then ``kl`` is a constant 0 and the caller computes its own estimate).
        generator: ``torch.Generator`` for eps, or ``None`` for the global one.
        eps: tuple of standard normal noise tensors, one per pair, or ``None`` to draw them
            (ignored for "var").
        mu_i, rho_i: posterior parameters, same shape; sigma_i = softplus(rho_i).

    Returns:
        one output per pair, of ``mu_i``'s shape, then the 0-dim total KL (nats).
    """

    @staticmethod
    def forward(ctx, mode: str, loc: float, scale: float | None,  # type: ignore[override]
                generator: torch.Generator | None, eps: tuple[Tensor, ...] | None, *params: Tensor):
        outs, saved = [], []
        kl = None
        for i in range(0, len(params), 2):
            mu, rho = params[i], params[i + 1]
            sigma, sigma_sq = _sigma(rho, scale is not None)
            if mode == "var":
                out = sigma * sigma
            elif eps is None:
                noise = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
                # in place over the fresh noise: no extra weight-sized buffer
                out = torch.addcmul(mu, sigma, noise, out=noise) if mode == "weight" else noise.mul_(sigma)
            else:
                noise = eps[i // 2]
                out = torch.addcmul(mu, sigma, noise) if mode == "weight" else sigma * noise
            if scale is not None:
                term = _normal_kl_value(mu, sigma, loc, scale, sigma_sq)
                kl = term if kl is None else kl + term
            outs.append(out)
            saved += [mu, rho, sigma, out]
        if kl is None:
            kl = torch.zeros((), dtype=params[0].dtype, device=params[0].device)
            ctx.mark_non_differentiable(kl)
        else:
            kl = torch.as_tensor(kl, dtype=params[0].dtype, device=params[0].device)
        ctx.mode, ctx.loc, ctx.scale = mode, loc, scale
        ctx.save_for_backward(*saved)
        return (*outs, kl)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor | None):  # type: ignore[override]
        saved = ctx.saved_tensors
        g_kl = grads[-1]
        c = 0.0 if (g_kl is None or ctx.scale is None) else float(g_kl)
        result: list[Tensor | None] = [None] * 5
        for i in range(0, len(saved), 4):
            result += _pair_grads(ctx.mode, ctx.loc, ctx.scale, c, grads[i // 4], *saved[i : i + 4])
        return tuple(result)


def _pair_grads(mode: str, loc: float, scale: float | None, c: float, g_out: Tensor | None, mu: Tensor,
                rho: Tensor, sigma: Tensor, out: Tensor) -> list[Tensor | None]:
    """Gradients w.r.t. (mu, rho) of <g_out, out> + c * KL for one parameter pair."""
    grad_mu: Tensor | None = None
    grad_sigma: Tensor | None = None
    k = 0.0 if scale is None else c / scale**2
    if g_out is not None:
        if mode == "weight":
            grad_mu = g_out if c == 0.0 else torch.add(g_out, mu, alpha=k)
            grad_sigma = torch.sub(out, mu)  # sigma * eps
        # sigma * dL/dsigma - c, in one pass; "delta": out = sigma * eps, so sigma * d(out)/d(sigma)
        # = out; "var": out = sigma^2, so sigma * d(out)/d(sigma) = 2 out
        neg_c = g_out.new_tensor(-c)
        if grad_sigma is not None:
            grad_sigma = torch.addcmul(neg_c, grad_sigma, g_out, out=grad_sigma)
        else:
            grad_sigma = torch.addcmul(neg_c, out, g_out, value=1.0 if mode == "delta" else 2.0)
    if c != 0.0:
        if grad_mu is None:
            grad_mu = mu * k
        if loc != 0.0:
            grad_mu = grad_mu - k * loc
        if grad_sigma is None:
            grad_sigma = torch.full_like(sigma, -c)
    if grad_sigma is not None:
        # divide once by sigma, add the c sigma / s^2 term, chain through softplus
        grad_sigma.div_(sigma)
        if c != 0.0:
            grad_sigma.add_(sigma, alpha=k)
        grad_sigma.mul_(torch.sigmoid(rho))
    return [grad_mu, grad_sigma]


_SIGN_TABLES: dict[tuple[torch.dtype, torch.device], Tensor] = {}


def _sign_table(dtype: torch.dtype, device: torch.device) -> Tensor:
    """(256, 8) table: row b holds the 8 bits of byte b as +1 / -1."""
    key = (dtype, device)
    table = _SIGN_TABLES.get(key)
    if table is None:
        bits = (torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1
        table = (bits * 2 - 1).to(dtype=dtype, device=device)
        _SIGN_TABLES[key] = table
    return table


def flip_signs(n: int, dtype: torch.dtype, device: torch.device,
               generator: torch.Generator | None = None) -> Tensor:
    """``n`` independent fair random signs (+1 / -1) of ``dtype``, shape ``(n,)``.

    Draws ``ceil(n / 64)`` full-range 64-bit random integers and expands each of their bytes
    into 8 signs by a table lookup: 64 signs per random number, where a per-element
    ``bernoulli_`` would cost ~30x more.
    """
    words = -(-n // 64)
    raw = torch.empty(words, dtype=torch.int64, device=device).random_(-(2**63), None, generator=generator)
    idx = raw.view(torch.uint8).long()
    return F.embedding(idx, _sign_table(dtype, torch.device(device))).view(-1)[:n]
