"""The numerical core of Probabilistic Backpropagation: moments, ADF updates, EP prior refinement.

Notation (Hernandez-Lobato & Adams 2015). A network of L linear layers with ReLUs between them;
layer ``l`` has factorised Gaussian weights ``N(M_l, V_l)``, both ``(n_out, n_in + 1)`` float64,
the last column being the bias. Every layer multiplies its input ``[z, 1]`` by ``W / sqrt(n_in + 1)``
(the bias is an extra input with mean 1 and variance 0). Inputs ``z`` are Gaussians with
independent entries, means ``mz`` and variances ``vz``; moments are propagated forward exactly
through each linear layer and matched through each ReLU.

The gradients of ``log Z`` with respect to all ``(M_l, V_l)`` are derived by hand (the chain
rule through :func:`linear_moments` and :func:`relu_moments`; no autograd): one ADF update on a
1x50 network costs about 40 small torch operations. Functions here are pure: they take and
return tensors and floats, so the tests can drive them on hand-made states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from vbayes.losses import normal_cdf

ROBUST_ALPHA = 30.0
"""Below ``alpha = m / sqrt(v) <= -30`` the ReLU's inverse Mills ratio ``phi(alpha) / Phi(alpha)`` is
replaced by its asymptotic series ``-alpha - 1/alpha + 2/alpha^3`` (the reference's safe branch)."""
MIN_VARIANCE = 1e-100
"""An ADF update that leaves a weight variance at or below this (or a NaN) is reverted."""
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass
class PBPState:
    """The approximate posterior of PBP.

    Attributes:
        m, v: per layer the weight means and variances ``(n_out, n_in + 1)`` float64 (bias last).
        a, b: Gamma(a, b) posterior on the noise precision (shape, rate); the noise variance used
            in ``log Z`` is ``b / (a - 1)``.
        noise_var: when not None, a fixed known noise variance; ``a``, ``b`` are then unused.
        reverted: number of weight entries whose ADF update was reverted by the guard.
        reverted_noise: number of noise updates rejected (non-finite, ``a <= 1`` or ``b <= 0``).
        nonfinite: number of ADF updates skipped because ``log Z`` was not finite.
    """

    m: list[Tensor]
    v: list[Tensor]
    a: float = 6.0
    b: float = 6.0
    noise_var: float | None = None
    reverted: int = 0
    reverted_noise: int = 0
    nonfinite: int = 0

    def noise_variance(self) -> float:
        """The noise variance of the predictive: ``b / (a - 1)`` (or the fixed one)."""
        return self.noise_var if self.noise_var is not None else self.b / (self.a - 1.0)


@dataclass
class PriorSites:
    """EP sites of the prior ``N(w | 0, 1 / lambda) Gamma(lambda | a_w, b_w)`` on every weight.

    Attributes:
        mean_nat, prec: per layer the Gaussian site's natural parameters ``m / v`` and ``1 / v``.
        a_nat, b_nat: per layer the Gamma site's contributions to ``a_w`` and ``-b_w``.
        a_w, b_w: the shared Gamma posterior on the weight precision.
        skipped: number of site updates skipped (invalid cavity).
    """

    mean_nat: list[Tensor]
    prec: list[Tensor]
    a_nat: list[Tensor]
    b_nat: list[Tensor]
    a_w: float = 6.0
    b_w: float = 6.0
    skipped: int = field(default=0)


def relu_moments(m: Tensor, v: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """Mean and variance of ``max(0, a)`` for ``a ~ N(m, v)`` elementwise (any shape, v > 0).

    With ``alpha = m / sqrt(v)`` and ``gamma = phi(alpha) / Phi(alpha)`` (asymptotic series when
    ``alpha <= -30``): mean ``Phi(alpha) (m + sqrt(v) gamma)``, variance
    ``mean (m + sqrt(v) gamma) Phi(-alpha) + Phi(alpha) v (1 - gamma (gamma + alpha))``.
    Returns ``(mean, var, cache)``; ``cache`` feeds :func:`relu_backward`.
    """
    s = v.sqrt()
    alpha = m / s
    cdf = normal_cdf(alpha)
    pdf = torch.exp(-0.5 * alpha * alpha) * _INV_SQRT_2PI
    robust = alpha <= -ROBUST_ALPHA
    gamma = torch.where(robust, -alpha - 1.0 / alpha + 2.0 / alpha**3, pdf / torch.where(robust, 1.0, cdf))
    aux = m + s * gamma
    mean = cdf * aux
    var = mean * aux * normal_cdf(-alpha) + cdf * v * (1.0 - gamma * (gamma + alpha))
    return mean, var, (s, alpha, cdf, pdf, mean)


def relu_backward(g_mean: Tensor, g_var: Tensor, cache: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    """Gradients with respect to the pre-activation ``(m, v)`` from those of ``(mean, var)``.

    Uses the exact partial derivatives of the rectified Gaussian's moments:
    ``dmean/dm = Phi``, ``dmean/dv = phi / (2 sqrt v)``, ``dvar/dm = 2 mean Phi(-alpha)``,
    ``dvar/dv = Phi - mean phi / sqrt v``.
    """
    s, alpha, cdf, pdf, mean = cache
    g_m = g_mean * cdf + g_var * (2.0 * mean) * normal_cdf(-alpha)
    g_v = g_mean * pdf / (2.0 * s) + g_var * (cdf - mean * pdf / s)
    return g_m, g_v


def linear_moments(mw: Tensor, vw: Tensor, mz: Tensor, vz: Tensor | None) -> tuple[Tensor, Tensor]:
    """Moments of ``W [z, 1] / sqrt(K)`` (``K = n_in + 1``) for independent ``W`` and ``z``.

    ``mw, vw`` ``(n_out, K)``; ``mz`` ``(..., K)`` with the bias entry 1 already appended, ``vz``
    the same shape (bias entry 0) or None for deterministic inputs. Returns mean and variance
    ``(..., n_out)``: ``mw mz / sqrt K`` and ``(vw (vz + mz^2) + mw^2 vz) / K``.
    """
    k = mw.shape[1]
    mean = mz @ mw.T / math.sqrt(k)
    if vz is None:
        var = (mz * mz) @ vw.T / k
    else:
        var = ((vz + mz * mz) @ vw.T + vz @ (mw * mw).T) / k
    return mean, var


def _with_bias(m: Tensor, v: Tensor | None) -> tuple[Tensor, Tensor | None]:
    one = torch.ones((*m.shape[:-1], 1), dtype=m.dtype)
    mz = torch.cat([m, one], -1)
    return mz, None if v is None else torch.cat([v, torch.zeros_like(one)], -1)


def forward_moments(m: list[Tensor], v: list[Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """Predictive moments of the network output ``f(x)`` (noise excluded), batched.

    ``x`` ``(B, D)`` float64 -> mean and variance ``(B,)`` of the single output.
    """
    mz, vz = _with_bias(x, None)
    for i, (mw, vw) in enumerate(zip(m, v)):
        mean, var = linear_moments(mw, vw, mz, vz)
        if i < len(m) - 1:
            mean, var, _ = relu_moments(mean, var)
            mz, vz = _with_bias(mean, var)
    return mean[..., 0], var[..., 0]


def log_z(mean: float, var: float, noise_var: float, y: float) -> float:
    """``log N(y | mean, var + noise_var)`` without the ``-log(2 pi) / 2`` constant."""
    total = var + noise_var
    return -0.5 * (math.log(total) + (y - mean) ** 2 / total)


def log_z_and_grads(m: list[Tensor], v: list[Tensor], x: Tensor, y: float, noise_var: float
                    ) -> tuple[float, float, float, list[Tensor], list[Tensor]]:
    """``log Z = log N(y | m_out, v_out + noise_var)`` of one example and its gradients.

    ``x`` ``(D,)`` float64. Returns ``(log Z, m_out, v_out, dlogZ/dM_l, dlogZ/dV_l)`` with the
    gradients shaped like the layers (``log Z`` without the ``-log(2 pi) / 2`` constant).
    """
    inputs: list[tuple[Tensor, Tensor | None]] = []
    caches: list[tuple[Tensor, ...]] = []
    mz, vz = _with_bias(x, None)
    n_layers = len(m)
    for i in range(n_layers):
        inputs.append((mz, vz))
        mean, var = linear_moments(m[i], v[i], mz, vz)
        if i < n_layers - 1:
            mean, var, cache = relu_moments(mean, var)
            caches.append(cache)
            mz, vz = _with_bias(mean, var)
    m_out, v_out = mean.tolist()[0], var.tolist()[0]
    total = v_out + noise_var
    r = y - m_out
    logz = -0.5 * (math.log(total) + r * r / total) if total > 0 else math.nan
    d_m = r / total
    d_v = 0.5 * (d_m * d_m - 1.0 / total)
    g_m = torch.full((1,), d_m, dtype=x.dtype)
    g_v = torch.full((1,), d_v, dtype=x.dtype)
    grads_m: list[Tensor] = [torch.empty(0)] * n_layers
    grads_v: list[Tensor] = [torch.empty(0)] * n_layers
    for i in range(n_layers - 1, -1, -1):
        mz, vz = inputs[i]
        k = m[i].shape[1]
        mz2 = mz * mz
        if vz is None:
            grads_m[i] = torch.outer(g_m, mz / math.sqrt(k))
            grads_v[i] = torch.outer(g_v, mz2 / k)
        else:
            grads_m[i] = torch.outer(g_m, mz / math.sqrt(k)).addcmul_(m[i], torch.outer(g_v, vz), value=2.0 / k)
            grads_v[i] = torch.outer(g_v, (vz + mz2) / k)
        if i > 0:
            g_mz = (g_m @ m[i]) / math.sqrt(k) + (2.0 / k) * mz * (g_v @ v[i])
            g_vz = (g_v @ (v[i] + m[i] * m[i])) / k
            g_m, g_v = relu_backward(g_mz[:-1], g_vz[:-1], caches[i - 1])
    return logz, m_out, v_out, grads_m, grads_v


def adf_update(state: PBPState, x: Tensor, y: float, learn_noise: bool = True) -> float:
    """One ADF step on example ``(x, y)`` (``x`` ``(D,)`` float64), in place; returns ``log Z``.

    Weights: ``M += V dlogZ/dM`` and ``V -= V^2 ((dlogZ/dM)^2 - 2 dlogZ/dV)``; entries whose new
    variance is ``<= 1e-100`` or whose new mean or variance is NaN keep their old values (counted
    in ``state.reverted``). Noise (``learn_noise`` and no fixed ``noise_var``): the Gamma(a, b)
    is moment-matched from ``log Z``, ``log Z1``, ``log Z2``, the same ``log Z`` with ``b / a`` and
    ``b / (a + 1)`` in place of ``b / (a - 1)``; a noise update that is not finite or leaves
    ``a <= 1`` or ``b <= 0`` is rejected (counted in ``state.reverted_noise``). All updates use
    the state before the step. A non-finite ``log Z`` skips the step (``state.nonfinite``).
    """
    noise_var = state.noise_variance()
    logz, m_out, v_out, gm, gv = log_z_and_grads(state.m, state.v, x, y, noise_var)
    if not math.isfinite(logz):
        state.nonfinite += 1
        return logz
    for i in range(len(state.m)):
        mw, vw = state.m[i], state.v[i]
        new_m = mw + vw * gm[i]
        new_v = vw - vw * vw * (gm[i] * gm[i] - 2.0 * gv[i])
        bad = (new_v <= MIN_VARIANCE) | torch.isnan(new_m) | torch.isnan(new_v)
        if bool(bad.any()):
            state.reverted += int(bad.sum())
            new_m = torch.where(bad, mw, new_m)
            new_v = torch.where(bad, vw, new_v)
        state.m[i], state.v[i] = new_m, new_v
    if learn_noise and state.noise_var is None:
        a, b = state.a, state.b
        logz1 = log_z(m_out, v_out, b / a, y)
        logz2 = log_z(m_out, v_out, b / (a + 1.0), y)
        try:
            new_a = 1.0 / (math.exp(logz2 - 2.0 * logz1 + logz) * (a + 1.0) / a - 1.0)
            new_b = 1.0 / (math.exp(logz2 - logz1) * (a + 1.0) / b - math.exp(logz1 - logz) * a / b)
        except (OverflowError, ZeroDivisionError):
            new_a = new_b = math.nan
        if math.isfinite(new_a) and math.isfinite(new_b) and new_a > 1.0 and new_b > 0.0:
            state.a, state.b = new_a, new_b
        else:
            state.reverted_noise += 1
    return logz


def init_sites(m: list[Tensor], a_w: float = 6.0, b_w: float = 6.0) -> PriorSites:
    """Prior sites before any refinement: Gaussian sites of precision ``(a_w - 1) / b_w`` and mean
    0 on every weight (shaped like ``m``), empty Gamma sites."""
    zeros = [torch.zeros_like(t) for t in m]
    return PriorSites(mean_nat=[z.clone() for z in zeros], prec=[torch.full_like(t, (a_w - 1.0) / b_w) for t in m],
                      a_nat=[z.clone() for z in zeros], b_nat=zeros, a_w=a_w, b_w=b_w)


def refine_prior(state: PBPState, sites: PriorSites) -> None:
    """One EP sweep over the prior sites of every weight, in place (state and sites).

    For each weight in turn (layers in order, row-major): remove its prior site from ``q`` (the
    cavity ``N(m_c, v_c)``, ``Gamma(a_c, b_c)`` of the shared weight precision), and where the
    cavity is valid (``v_c`` in (0, 1e6), ``b_c > 0``, ``a_c > 1``) moment-match
    ``N(w | m_c, v_c) N(w | 0, 1 / lambda) Gamma(lambda | a_c, b_c)`` by the same ``log Z``,
    ``log Z1``, ``log Z2`` rule as the noise; the site becomes the new ``q`` over the cavity. The
    shared ``a_w``, ``b_w`` change after every weight (sequential EP, as in the reference).
    """
    a_w, b_w = sites.a_w, sites.b_w
    for layer in range(len(state.m)):
        shape = state.m[layer].shape
        ms, vs = state.m[layer].reshape(-1).tolist(), state.v[layer].reshape(-1).tolist()
        mh, vh = sites.mean_nat[layer].reshape(-1).tolist(), sites.prec[layer].reshape(-1).tolist()
        ah, bh = sites.a_nat[layer].reshape(-1).tolist(), sites.b_nat[layer].reshape(-1).tolist()
        for j in range(len(ms)):
            prec_cav = 1.0 / vs[j] - vh[j]
            mnat_cav = ms[j] / vs[j] - mh[j]
            a_cav, b_cav = a_w - ah[j], b_w + bh[j]
            if not (prec_cav > 1e-6 and b_cav > 0.0 and a_cav > 1.0):  # v_cav in (0, 1e6)
                sites.skipped += 1
                continue
            v_cav = 1.0 / prec_cav
            m_cav = mnat_cav * v_cav
            s0, s1, s2 = v_cav + b_cav / (a_cav - 1.0), v_cav + b_cav / a_cav, v_cav + b_cav / (a_cav + 1.0)
            lz0 = -0.5 * math.log(s0) - 0.5 * m_cav * m_cav / s0
            lz1 = -0.5 * math.log(s1) - 0.5 * m_cav * m_cav / s1
            lz2 = -0.5 * math.log(s2) - 0.5 * m_cav * m_cav / s2
            d_m = -m_cav / s0
            d_v = -0.5 / s0 + 0.5 * m_cav * m_cav / (s0 * s0)
            m_new = m_cav + v_cav * d_m
            v_new = v_cav - v_cav * v_cav * (d_m * d_m - 2.0 * d_v)
            a_new = 1.0 / (math.exp(lz2 - 2.0 * lz1 + lz0) * (a_cav + 1.0) / a_cav - 1.0)
            b_new = 1.0 / (math.exp(lz2 - lz1) * (a_cav + 1.0) / b_cav - math.exp(lz1 - lz0) * a_cav / b_cav)
            mh[j] = m_new / v_new - mnat_cav
            vh[j] = 1.0 / v_new - prec_cav
            ah[j] = a_new - a_cav
            bh[j] = b_cav - b_new
            ms[j], vs[j] = m_new, v_new
            a_w, b_w = a_new, b_new
        dtype = state.m[layer].dtype
        state.m[layer] = torch.tensor(ms, dtype=dtype).reshape(shape)
        state.v[layer] = torch.tensor(vs, dtype=dtype).reshape(shape)
        sites.mean_nat[layer] = torch.tensor(mh, dtype=dtype).reshape(shape)
        sites.prec[layer] = torch.tensor(vh, dtype=dtype).reshape(shape)
        sites.a_nat[layer] = torch.tensor(ah, dtype=dtype).reshape(shape)
        sites.b_nat[layer] = torch.tensor(bh, dtype=dtype).reshape(shape)
    sites.a_w, sites.b_w = a_w, b_w
