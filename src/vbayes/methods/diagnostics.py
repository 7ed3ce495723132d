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
    chain in two first. Uses Geyer's initial positive and monotone sequence; capped at
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
    out = np.empty(k)
    for j in range(k):
        if not np.isfinite(var_plus[j]) or var_plus[j] <= 0:
            out[j] = np.nan if not np.isfinite(var_plus[j]) else float(c * t)
            continue
        rho = 1.0 - (w[j] - acov[:, :, j].mean(axis=0)) / var_plus[j]  # (T,)
        rho[0] = 1.0
        # Geyer: sum pairs P_m = rho_{2m} + rho_{2m+1} while positive, made monotone
        n_pairs = t // 2
        pairs = rho[: 2 * n_pairs].reshape(n_pairs, 2).sum(axis=1)
        positive = pairs > 0
        m = n_pairs if positive.all() else int(np.argmin(positive))
        pairs = np.minimum.accumulate(pairs[:m]) if m > 0 else pairs[:0]
        tau = -1.0 + 2.0 * pairs.sum()
        tau = max(tau, 1.0 / np.log10(c * t)) if c * t > 1 else tau
        out[j] = c * t / tau
    return _out(out, scalar)


def summarize(draws: np.ndarray) -> dict[str, float]:
    """``rhat_max`` (rank-normalised split R-hat) and ``ess_min`` (bulk ESS) over K quantities."""
    a, _ = _as_ctk(draws)
    r = np.asarray(rank_rhat(a)).reshape(-1)
    e = np.asarray(ess(a)).reshape(-1)
    return {"rhat_max": float(np.nanmax(r)), "ess_min": float(np.nanmin(e))}
