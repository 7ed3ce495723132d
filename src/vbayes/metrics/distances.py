"""Distances between sample sets, column by column: the study's comparisons with a reference.

Every function takes samples ``(S, M)``: S draws of M quantities (e.g. f(x) at M grid inputs),
and returns one value per column ``(M,)``, in float64. They are exact for the empirical
distributions given (no binning or interpolation).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vbayes.errors import VBayesError
from vbayes.losses import normal_cdf


def _columns(samples: Tensor, name: str) -> Tensor:
    x = torch.as_tensor(samples).double()
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1:
        raise VBayesError(f"{name} must be samples of shape (S, M) with S >= 1, got {tuple(x.shape)}")
    return x


def wasserstein_samples(a: Tensor, b: Tensor, p: float = 2.0) -> Tensor:
    """The 1-D Wasserstein-p distance between the empirical distributions of ``a`` ``(Sa, M)``
    and ``b`` ``(Sb, M)``, per column ``(M,)``: ``(int_0^1 |F_a^-1(u) - F_b^-1(u)|^p du)^(1/p)``.

    Both quantile functions are step functions, so the integral is a finite sum over the merged
    steps ``k / Sa`` and ``j / Sb``; the sample counts may differ.
    """
    if not p >= 1:
        raise VBayesError(f"wasserstein_samples: p must be >= 1, got {p}")
    xa, xb = _columns(a, "a").sort(0).values, _columns(b, "b").sort(0).values
    if xa.shape[1] != xb.shape[1]:
        raise VBayesError(f"a and b must have the same number of columns, got {xa.shape[1]} and {xb.shape[1]}")
    na, nb = xa.shape[0], xb.shape[0]
    steps = torch.cat([torch.arange(1, na + 1, dtype=torch.float64) / na,
                       torch.arange(1, nb + 1, dtype=torch.float64) / nb]).unique()  # sorted, ends at 1
    widths = torch.diff(steps, prepend=steps.new_zeros(1))
    mids = steps - 0.5 * widths
    ia = (mids * na).floor().long().clamp(max=na - 1)
    ib = (mids * nb).floor().long().clamp(max=nb - 1)
    gap = (xa[ia] - xb[ib]).abs() ** p  # (K, M)
    return (widths[:, None] * gap).sum(0) ** (1.0 / p)


def ks_to_normal(samples: Tensor) -> Tensor:
    """Kolmogorov-Smirnov distance ``sup_x |F_S(x) - Phi((x - m) / s)|`` per column ``(M,)``
    between the empirical CDF of ``samples`` ``(S, M)`` and the Gaussian with the samples' own
    mean m and (population) std s: how far the samples are from their moment-matched Gaussian.
    A column with no spread gets 0."""
    x = _columns(samples, "samples")
    n = x.shape[0]
    m, s = x.mean(0), x.std(0, unbiased=False)
    z = (x.sort(0).values - m) / torch.where(s > 0, s, torch.ones_like(s))
    cdf = normal_cdf(z)
    k = torch.arange(1, n + 1, dtype=torch.float64)[:, None]
    dist = torch.maximum(k / n - cdf, cdf - (k - 1) / n).max(0).values
    return torch.where(s > 0, dist, torch.zeros_like(dist))


def gaussian_interval_coverage(samples: Tensor, level: float = 0.95) -> Tensor:
    """The fraction of ``samples`` ``(S, M)`` inside their moment-matched Gaussian's central
    ``level`` interval ``m +- z s`` per column ``(M,)`` (``level`` when the samples are Gaussian)."""
    if not 0.0 < level < 1.0:
        raise VBayesError(f"level must be in (0, 1), got {level}")
    x = _columns(samples, "samples")
    z = math.sqrt(2.0) * float(torch.erfinv(torch.tensor(level, dtype=torch.float64)))
    m, s = x.mean(0), x.std(0, unbiased=False)
    return ((x - m).abs() <= z * s).double().mean(0)


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation of two ``(K,)`` vectors (ties get their mean rank); NaN when
    K < 3 or either vector is constant."""
    x, y = torch.as_tensor(a).double().reshape(-1), torch.as_tensor(b).double().reshape(-1)
    if x.shape != y.shape:
        raise VBayesError(f"spearman needs two vectors of the same length, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.numel() < 3:
        return math.nan
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float((rx.square().sum() * ry.square().sum()).sqrt())
    return float((rx * ry).sum()) / denom if denom > 0 else math.nan


def _ranks(x: Tensor) -> Tensor:
    """Ranks 1..K of ``x`` ``(K,)`` with ties given their mean rank."""
    order = x.argsort()
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(1, x.numel() + 1, dtype=torch.float64)
    for value in x.unique():
        tied = x == value
        if int(tied.sum()) > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks
