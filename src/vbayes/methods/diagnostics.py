"""MCMC convergence diagnostics: split R-hat (classic and rank-normalised) and effective sample size.

Follows Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), "Rank-normalization, folding, and
localization: an improved R-hat for assessing convergence of MCMC", and Stan's ESS estimator
(Geyer's initial monotone sequence on the multi-chain autocorrelation). All functions take
``draws`` of shape ``(C, T)`` (chains x iterations) or ``(C, T, K)`` for K quantities at once,
and return a float or a ``(K,)`` array.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata


def _as_ctk(draws: np.ndarray) -> tuple[np.ndarray, bool]:
    a = np.asarray(draws, dtype=np.float64)
    if a.ndim == 2:
        return a[:, :, None], True
    if a.ndim != 3:
        raise ValueError(f"draws must have shape (C, T) or (C, T, K), got {a.shape}")
    return a, False


def _out(values: np.ndarray, scalar: bool) -> float | np.ndarray:
    return float(values[0]) if scalar else values


def _split(a: np.ndarray) -> np.ndarray:
    """``(C, T, K)`` -> ``(2C, T // 2, K)``: each chain cut into halves (middle draw dropped if odd)."""
    half = a.shape[1] // 2
    return np.concatenate([a[:, :half], a[:, a.shape[1] - half :]], axis=0)


def classic_rhat(draws: np.ndarray) -> float | np.ndarray:
    """Gelman-Rubin potential scale reduction on the chains as given (no split, no ranks).

    ``sqrt(((T - 1) / T * W + B / T) / W)`` with W the mean within-chain variance and B / T the
    variance of the chain means (both with ``ddof=1``). Needs C >= 2 and T >= 2.
    """
    a, scalar = _as_ctk(draws)
    c, t, _ = a.shape
    if c < 2 or t < 2:
        raise ValueError(f"R-hat needs at least 2 chains of 2 draws, got {c} x {t}")
    w = a.var(axis=1, ddof=1).mean(axis=0)
    b_over_t = a.mean(axis=1).var(axis=0, ddof=1)
    var_plus = (t - 1) / t * w + b_over_t
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(var_plus / w)
    r = np.where((w == 0) & (b_over_t == 0), 1.0, r)
    r = np.where((w == 0) & (b_over_t > 0), np.inf, r)
    return _out(r, scalar)


def split_rhat(draws: np.ndarray) -> float | np.ndarray:
    """Classic R-hat on split chains (each chain cut in two halves)."""
    a, scalar = _as_ctk(draws)
    return _out(np.asarray(classic_rhat(_split(a))).reshape(-1), scalar)


def rank_normalize(a: np.ndarray) -> np.ndarray:
    """Pooled ranks of all ``C * T`` draws mapped through the normal quantile (per quantity k)."""
    a3, scalar = _as_ctk(a)
    c, t, k = a3.shape
    flat = a3.reshape(c * t, k)
    ranks = rankdata(flat, axis=0, method="average")
    z = ndtri((ranks - 0.375) / (c * t + 0.25))
    z = z.reshape(c, t, k)
    return z[:, :, 0] if scalar else z


def rank_rhat(draws: np.ndarray) -> float | np.ndarray:
    """Rank-normalised split R-hat: the max of the bulk and the folded (tail) versions."""
    a, scalar = _as_ctk(draws)
    s = _split(a)
    bulk = np.asarray(classic_rhat(rank_normalize(s))).reshape(-1)
    folded = np.abs(s - np.median(s.reshape(-1, s.shape[2]), axis=0))
    tail = np.asarray(classic_rhat(rank_normalize(folded))).reshape(-1)
    return _out(np.maximum(bulk, tail), scalar)


def _autocov(a: np.ndarray) -> np.ndarray:
    """Autocovariance ``(C, T, K)`` per chain, lags 0..T-1 (biased, divided by T), via FFT."""
    t = a.shape[1]
    centred = a - a.mean(axis=1, keepdims=True)
    n = 1 << (2 * t - 1).bit_length()
    f = np.fft.rfft(centred, n=n, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=n, axis=1)[:, :t]
    return acov / t


def ess(draws: np.ndarray, *, rank: bool = True, split: bool = True) -> float | np.ndarray:
    """Effective sample size of the mean, over all chains (Stan / Vehtari et al. 2021).

    With ``rank`` (default) it is the bulk ESS of the rank-normalised draws; ``split`` cuts each
    chain in two first (``rank=False`` is arviz's ``method="mean"``). Uses Geyer's initial
    positive and monotone sequence truncated exactly as Stan's ``ess`` and arviz's ``_ess`` (see
    :func:`_tau_hat`; tests/test_diagnostics.py checks equality with arviz to 1e-10); capped at
    ``C * T * log10(C * T)`` as Stan does. Needs T >= 4.
    """
    a, scalar = _as_ctk(draws)
    if split:
        a = _split(a)
    if rank:
        a = rank_normalize(a)
    c, t, k = a.shape
    if t < 2:
        raise ValueError(f"ESS needs at least 4 draws per chain, got {t * (2 if split else 1)}")
    acov = _autocov(a)  # (C, T, K)
    chain_mean = a.mean(axis=1)  # (C, K)
    chain_var = acov[:, 0] * t / (t - 1.0)  # (C, K)
    w = chain_var.mean(axis=0)
    var_plus = w * (t - 1.0) / t
    if c > 1:
        var_plus = var_plus + chain_mean.var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (w - acov.mean(axis=0)) / var_plus  # (T, K): multi-chain autocorrelation
    rho[0] = 1.0
    out = c * t / _tau_hat(rho, c * t)
    out = np.where(np.isfinite(var_plus) & (var_plus <= 0), float(c * t), out)
    return _out(out, scalar)


def _tau_hat(rho: np.ndarray, n: int) -> np.ndarray:
    """Integrated autocorrelation time ``(K,)`` from ``rho`` ``(T, K)``, as Stan and arviz's ``_ess``.

    Pairs ``P_m = rho_2m + rho_2m+1`` are summed for m = 0..M-1, where M is the first pair that is
    not positive (Geyer's initial positive sequence), looking at pairs m < (T - 2) / 2 only; the
    pairs are made non-increasing (initial monotone sequence). ``tau = -1 + 2 * sum(P_m) + rho_2M``,
    the last term (the even lag of pair M, unconstrained) added once when it is positive (or when
    pair M was not negative), and ``tau`` is kept above ``1 / log10(n)``.
    """
    t, k = rho.shape
    m_max = -(-(t - 2) // 2) - 1  # the last pair index Stan's loop computes: m < (T - 2) / 2
    tau = np.full(k, -1.0 + 1.0)  # M = 0: rho_0 counted once
    if m_max >= 1:
        pairs = rho[0 : 2 * m_max + 1 : 2] + rho[1 : 2 * m_max + 2 : 2]  # (m_max + 1, K)
        not_pos = ~(pairs > 0)
        first = np.where(not_pos.any(axis=0), np.argmax(not_pos, axis=0), m_max + 1)
        big_m = np.minimum(first, m_max)  # (K,)
        csum = np.cumsum(np.minimum.accumulate(pairs, axis=0), axis=0)  # (m_max + 1, K)
        cols = np.arange(k)
        summed = np.where(big_m > 0, csum[np.maximum(big_m - 1, 0), cols], 0.0)
        even = rho[2 * big_m, cols]
        last = np.where((even > 0) | (pairs[big_m, cols] >= 0), even, 0.0)
        tau = np.where(big_m > 0, -1.0 + 2.0 * summed + last, tau)
    tau = np.maximum(tau, 1.0 / np.log10(n)) if n > 1 else tau
    return np.where(np.isnan(rho).any(axis=0), np.nan, tau)


def summarize(draws: np.ndarray) -> dict[str, float]:
    """``rhat_max`` (rank-normalised split R-hat) and ``ess_min`` (bulk ESS) over K quantities."""
    a, _ = _as_ctk(draws)
    r = np.asarray(rank_rhat(a)).reshape(-1)
    e = np.asarray(ess(a)).reshape(-1)
    return {"rhat_max": float(np.nanmax(r)), "ess_min": float(np.nanmin(e))}
