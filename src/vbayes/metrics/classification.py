"""Classification metrics of a sampled predictive.

Metrics have the signature ``f(pred, y) -> float`` where ``pred`` is a
:class:`~vbayes.methods.predictive.ClassificationPrediction` (``probs`` of shape ``(S, N, C)``) and
``y`` the ``(N,)`` int64 labels. They score the posterior predictive ``mean_s probs``.
Per-input uncertainties (:func:`predictive_entropy`, :func:`mutual_information`) return
``(N,)`` tensors in nats.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vbayes.methods.predictive import ClassificationPrediction

_EPS = 1e-12


def _probs(pred: ClassificationPrediction) -> Tensor:
    probs = torch.as_tensor(pred.probs).detach().double().cpu()
    if probs.ndim != 3:
        raise ValueError(f"prediction: probs must be (S, N, C), got {tuple(probs.shape)}")
    return probs


def _unpack(pred: ClassificationPrediction, y: Tensor) -> tuple[Tensor, Tensor]:
    """Mean probabilities ``(N, C)`` float64 and labels ``(N,)`` int64, shape-checked."""
    probs = _probs(pred).mean(0)
    y = torch.as_tensor(y).detach().cpu().reshape(-1).long()
    if probs.shape[0] != y.shape[0]:
        raise ValueError(f"prediction has N={probs.shape[0]} inputs but y has {y.shape[0]}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= probs.shape[1]):
        raise ValueError(f"labels must lie in [0, {probs.shape[1]}), got {int(y.min())}..{int(y.max())}")
    return probs, y


def accuracy(pred: ClassificationPrediction, y: Tensor) -> float:
    """Fraction of inputs whose most probable class (of the mean predictive) is the label."""
    probs, y = _unpack(pred, y)
    return float((probs.argmax(1) == y).double().mean())


def nll(pred: ClassificationPrediction, y: Tensor) -> float:
    """Negative log-likelihood of the labels under the mean predictive, nats per example
    (probabilities clamped at 1e-12)."""
    probs, y = _unpack(pred, y)
    return float(-probs.gather(1, y[:, None]).clamp_min(_EPS).log().mean())


def brier(pred: ClassificationPrediction, y: Tensor) -> float:
    """Brier score ``mean_n sum_c (p_nc - 1[y_n = c])^2`` in [0, 2] (sum over classes)."""
    probs, y = _unpack(pred, y)
    onehot = torch.nn.functional.one_hot(y, probs.shape[1]).double()
    return float(((probs - onehot) ** 2).sum(1).mean())


def _bins(pred: ClassificationPrediction, y: Tensor, n_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-bin mean confidence, accuracy and count, each ``(n_bins,)``.

    Equal-width bins ``[k/n, (k+1)/n)`` on the top-class confidence; a confidence of exactly
    1.0 falls in the last bin. Empty bins have confidence and accuracy 0 and count 0.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    probs, y = _unpack(pred, y)
    conf, label = probs.max(1)
    correct = (label == y).double()
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    idx = (torch.bucketize(conf, edges, right=True) - 1).clamp(0, n_bins - 1)
    count = torch.zeros(n_bins, dtype=torch.float64).scatter_add_(0, idx, torch.ones_like(conf))
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).scatter_add_(0, idx, conf)
    acc_sum = torch.zeros(n_bins, dtype=torch.float64).scatter_add_(0, idx, correct)
    safe = count.clamp_min(1.0)
    return conf_sum / safe, acc_sum / safe, count


def ece(pred: ClassificationPrediction, y: Tensor, n_bins: int = 15) -> float:
    """Expected calibration error: ``sum_b (n_b / N) |acc_b - conf_b|`` over ``n_bins``
    equal-width bins of top-class confidence (15 by default; 1.0 falls in the last bin).
    0 for a perfectly calibrated predictive."""
    conf, acc, count = _bins(pred, y, n_bins)
    return float(((acc - conf).abs() * count).sum() / count.sum())


def reliability_curve(
    pred: ClassificationPrediction, y: Tensor, n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability diagram data: per-bin mean confidence, accuracy and count, ``(n_bins,)`` each
    (same bins as :func:`ece`; empty bins have count 0)."""
    conf, acc, count = _bins(pred, y, n_bins)
    return conf.numpy(), acc.numpy(), count.numpy()


def _entropy(p: Tensor) -> Tensor:
    return -(p * p.clamp_min(_EPS).log()).sum(-1)


def predictive_entropy(pred: ClassificationPrediction) -> Tensor:
    """``(N,)`` entropy of the mean predictive ``H[mean_s p_s]`` in nats (total uncertainty)."""
    return _entropy(_probs(pred).mean(0))


def mutual_information(pred: ClassificationPrediction) -> Tensor:
    """``(N,)`` mutual information between label and weights, ``H[mean_s p_s] - mean_s H[p_s]``,
    in nats (the epistemic part; 0 when S = 1). Clamped at 0 against rounding."""
    probs = _probs(pred)
    return (_entropy(probs.mean(0)) - _entropy(probs).mean(0)).clamp_min(0.0)


def auroc_ood(scores_in: Tensor, scores_out: Tensor) -> float:
    """Area under the ROC curve for telling out-of-distribution inputs (positives) from
    in-distribution ones by a score that should be higher out of distribution.

    Mann-Whitney statistic with ties counted one half: the probability that a random OOD score
    exceeds a random in-distribution one. 0.5 is chance, 1.0 perfect separation.
    """
    s_in = np.asarray(torch.as_tensor(scores_in).detach().cpu().double().reshape(-1))
    s_out = np.asarray(torch.as_tensor(scores_out).detach().cpu().double().reshape(-1))
    if s_in.size == 0 or s_out.size == 0:
        raise ValueError("auroc_ood needs at least one in- and one out-of-distribution score")
    scores = np.concatenate([s_in, s_out])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    avg = 0.5 * (starts + ends - 1) + 1.0
    ranks[order] = np.repeat(avg, ends - starts)
    n_in, n_out = s_in.size, s_out.size
    u = ranks[n_in:].sum() - n_out * (n_out + 1) / 2.0
    return float(u / (n_in * n_out))
