"""Regression metrics of a Gaussian-mixture predictive.

Every metric has the signature ``f(pred, y) -> float`` where ``pred`` is a
:class:`~vbayes.methods.predictive.RegressionPrediction` (an equal-weight mixture of S Gaussians per
input, ``mu`` and ``sigma`` of shape ``(S, N)``) and ``y`` is the ``(N,)`` tensor of targets,
both on the same (original) scale. Scores are averages over the N inputs, in the units of ``y``
(RMSE, CRPS, MPIW), nats per example (NLL) or proportions (PICP, calibration).

All computations run in float64 so that metrics of float32 predictions are stable.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from vbayes.losses import normal_cdf
from vbayes.methods.predictive import RegressionPrediction

_LOG_2PI = math.log(2 * math.pi)


def _unpack(pred: RegressionPrediction, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``mu (S, N)``, ``sigma (S, N)``, ``y (N,)`` as float64 after shape checks."""
    mu = torch.as_tensor(pred.mu).detach().double().cpu()
    sigma = torch.as_tensor(pred.sigma).detach().double().cpu()
    y = torch.as_tensor(y).detach().double().cpu().reshape(-1)
    if mu.ndim != 2 or mu.shape != sigma.shape:
        raise ValueError(f"prediction: mu {tuple(mu.shape)} and sigma {tuple(sigma.shape)} must both be (S, N)")
    if mu.shape[1] != y.shape[0]:
        raise ValueError(f"prediction has N={mu.shape[1]} inputs but y has {y.shape[0]}")
    if not bool((sigma > 0).all()):
        raise ValueError("prediction: every sigma must be > 0")
    return mu, sigma, y


def _normal_pdf(z: Tensor) -> Tensor:
    return torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def rmse(pred: RegressionPrediction, y: Tensor) -> float:
    """Root mean squared error of the predictive mean, in units of ``y``."""
    mu, _, y = _unpack(pred, y)
    return float(((mu.mean(0) - y) ** 2).mean().sqrt())


def log_likelihood(pred: RegressionPrediction, y: Tensor) -> Tensor:
    """``(N,)`` log density of each target under the mixture: ``log mean_s N(y; mu_s, sigma_s^2)``."""
    mu, sigma, y = _unpack(pred, y)
    z = (y - mu) / sigma
    comp = -0.5 * z * z - torch.log(sigma) - 0.5 * _LOG_2PI  # (S, N)
    return torch.logsumexp(comp, dim=0) - math.log(mu.shape[0])


def nll(pred: RegressionPrediction, y: Tensor) -> float:
    """Negative test log-likelihood of the predictive mixture, nats per example.

    ``-mean_n log( (1/S) sum_s N(y_n; mu_sn, sigma_sn^2) )`` via ``logsumexp`` (the mixture's
    density, not that of a Gaussian moment-matched to it).
    """
    return float(-log_likelihood(pred, y).mean())


def _abs_moment(m: Tensor, s: Tensor) -> Tensor:
    """``E|X|`` for ``X ~ N(m, s^2)`` (folded-normal mean)."""
    z = m / s
    return s * 2 * _normal_pdf(z) + m * (2 * normal_cdf(z) - 1)


#: above this many components, E|X - X'| uses the pairs of an evenly strided subset of them
CRPS_MAX_COMPONENTS = 500


def crps(pred: RegressionPrediction, y: Tensor) -> float:
    """Continuous ranked probability score of the mixture, in units of ``y`` (lower is better).

    ``CRPS(F, y) = E|X - y| - E|X - X'| / 2`` with X, X' independent draws of the mixture; both
    expectations are sums of closed-form folded-normal means over components (pairs of
    components for the second). For S = 1 this is the closed-form Gaussian CRPS of Gneiting &
    Raftery (2007). Exact when S <= :data:`CRPS_MAX_COMPONENTS`; above, ``E|X - y|`` and the
    same-component pairs stay exact while the mean over pairs of distinct components is
    estimated from all distinct pairs of an evenly strided subset of that many components
    (for MCMC samples: a thinned chain), which keeps the cost O(S N + 500^2 N). The estimate's
    error shrinks like 1/sqrt(500) times the spread of the components' mean distances to the
    others: negligible when posterior samples are close relative to the noise, a few % when
    the component means spread over several noise widths.
    """
    mu, sigma, y = _unpack(pred, y)
    s_count, n = mu.shape
    term1 = _abs_moment(y - mu, sigma).mean(0)  # (N,)
    if s_count == 1:
        return float((term1 - 0.5 * _abs_moment(torch.zeros_like(y), math.sqrt(2.0) * sigma[0])).mean())
    diag = _abs_moment(torch.zeros_like(mu), math.sqrt(2.0) * sigma).mean(0)  # (N,) pairs i == j
    sub = torch.linspace(0, s_count - 1, min(s_count, CRPS_MAX_COMPONENTS)).round().long().unique()
    m_all, v_all = mu[sub], sigma[sub] ** 2
    k = len(sub)
    chunk = max(1, int(4e6 // (k * k)))
    off = torch.empty(n, dtype=torch.float64)
    for start in range(0, n, chunk):
        m = m_all[:, start : start + chunk]
        v = v_all[:, start : start + chunk]
        pair = _abs_moment(m[:, None, :] - m[None, :, :], (v[:, None, :] + v[None, :, :]).sqrt())  # (k, k, n)
        same = torch.diagonal(pair, dim1=0, dim2=1).sum(-1)  # (n,)
        off[start : start + chunk] = (pair.sum((0, 1)) - same) / (k * (k - 1))
    term2 = diag / s_count + off * (1.0 - 1.0 / s_count)
    return float((term1 - 0.5 * term2).mean())


def mixture_cdf(pred: RegressionPrediction, y: Tensor) -> Tensor:
    """``(N,)`` probability integral transform ``F(y_n)`` of each target under its mixture."""
    mu, sigma, y = _unpack(pred, y)
    return normal_cdf((y - mu) / sigma).mean(0)


def mixture_quantile(pred: RegressionPrediction, q: float, tol: float = 1e-10, max_iter: int = 100) -> Tensor:
    """``(N,)`` q-quantile of each input's mixture.

    Safeguarded Newton iteration on the mixture CDF inside the bracket [min_s, max_s] of the
    components' own q-quantiles (the mixture's lies between them); a step leaving the bracket
    is replaced by bisection. Stops when every ``|F(x) - q| < tol``.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"mixture_quantile: q must be in (0, 1), got {q}")
    mu = torch.as_tensor(pred.mu).detach().double().cpu()
    sigma = torch.as_tensor(pred.sigma).detach().double().cpu()
    z = math.sqrt(2.0) * float(torch.erfinv(torch.tensor(2 * q - 1, dtype=torch.float64)))
    comp = mu + sigma * z  # (S, N) component quantiles
    lo, hi = comp.min(0).values, comp.max(0).values
    x = comp.mean(0)
    for _ in range(max_iter):
        u = (x - mu) / sigma
        err = normal_cdf(u).mean(0) - q
        if float(err.abs().max()) < tol:
            break
        lo = torch.where(err < 0, x, lo)
        hi = torch.where(err > 0, x, hi)
        dens = (_normal_pdf(u) / sigma).mean(0)
        step = x - err / dens.clamp_min(1e-300)
        inside = (step > lo) & (step < hi)
        x = torch.where(inside, step, 0.5 * (lo + hi))
    return x


def _interval(pred: RegressionPrediction, level: float) -> tuple[Tensor, Tensor]:
    _check_level(level)
    tail = 0.5 * (1.0 - level)
    return mixture_quantile(pred, tail), mixture_quantile(pred, 1.0 - tail)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level}")


def picp(pred: RegressionPrediction, y: Tensor, level: float = 0.95) -> float:
    """Prediction interval coverage probability: the fraction of targets inside the central
    ``level`` interval of their mixture. Ideal value: ``level``.

    Exact without computing quantiles: ``y`` lies in ``[F^-1((1-l)/2), F^-1((1+l)/2)]`` iff
    ``|2 F(y) - 1| <= l`` for the continuous, increasing mixture CDF F.
    """
    _check_level(level)
    return float(((2 * mixture_cdf(pred, y) - 1).abs() <= level).double().mean())


def mpiw(pred: RegressionPrediction, y: Tensor, level: float = 0.95) -> float:
    """Mean width of the central ``level`` prediction intervals (mixture quantiles), in units of ``y``."""
    _unpack(pred, y)
    lo, hi = _interval(pred, level)
    return float((hi - lo).mean())


def calibration_curve(
    pred: RegressionPrediction, y: Tensor, n_levels: int = 99, kind: str = "interval"
) -> tuple[np.ndarray, np.ndarray]:
    """Expected against observed proportions, two ``(n_levels + 2,)`` arrays from 0 to 1.

    ``kind="interval"`` (the default, as uncertainty-toolbox): for each level p, the fraction
    of targets inside the central p-interval of their mixture, i.e. ``|2 F(y) - 1| <= p``.
    ``kind="quantile"``: the fraction with ``F(y) <= p``. A calibrated predictive lies on the
    diagonal. The end points (0, 0) and (1, 1) are included.
    """
    if kind not in ("interval", "quantile"):
        raise ValueError(f"calibration_curve: kind must be 'interval' or 'quantile', got {kind!r}")
    pit = mixture_cdf(pred, y).numpy()
    stat = np.abs(2 * pit - 1) if kind == "interval" else pit
    expected = np.linspace(0.0, 1.0, n_levels + 2)
    observed = (stat[None, :] <= expected[:, None]).mean(1)
    observed[0], observed[-1] = 0.0, 1.0
    return expected, observed


def miscalibration_area(pred: RegressionPrediction, y: Tensor, n_levels: int = 99) -> float:
    """Area between the (interval) calibration curve and the diagonal, in [0, 0.5] ~ [0, 1).

    Trapezoidal integral of ``|observed - expected|`` over the expected proportion on
    ``n_levels`` evenly spaced levels (curves that cross the diagonal are counted by absolute
    value, slightly overestimating the polygon area near crossings).
    """
    expected, observed = calibration_curve(pred, y, n_levels)
    gap = np.abs(observed - expected)
    return float(np.sum(0.5 * (gap[1:] + gap[:-1]) * np.diff(expected)))


def picp95(pred: RegressionPrediction, y: Tensor) -> float:
    """:func:`picp` at 95%."""
    return picp(pred, y, 0.95)


def mpiw95(pred: RegressionPrediction, y: Tensor) -> float:
    """:func:`mpiw` at 95%."""
    return mpiw(pred, y, 0.95)
