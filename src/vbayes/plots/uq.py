"""Uncertainty-quantification plots: predictive bands, calibration, reliability, entropy histograms.

Every ``plot_*`` takes an optional ``ax`` (a new figure when ``None``) and returns the axes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from vbayes.plots.common import new_axes, to_numpy


def plot_predictive_bands(
    x_train: Any,
    y_train: Any,
    x_grid: Any,
    mean: Any,
    total_std: Any,
    epistemic_std: Any,
    ax: Axes | None = None,
    title: str | None = None,
    truth: Any | None = None,
) -> Axes:
    """A 1-D regression predictive: mean, +-2 total std (light band) and +-2 epistemic std
    (dark band, drawn over it), with the training points.

    Args:
        x_train, y_train: ``(N,)`` or ``(N, 1)`` inputs and ``(N,)`` targets.
        x_grid: ``(G,)`` or ``(G, 1)`` plotting inputs; mean, total_std, epistemic_std: ``(G,)``.
        truth: optional ``(G,)`` noiseless function on ``x_grid`` (dashed line).
    """
    if ax is None:
        ax = new_axes((4.2, 3.2))
    xg = to_numpy(x_grid, "x_grid").reshape(-1)
    order = np.argsort(xg)
    xg = xg[order]
    m = to_numpy(mean, "mean").reshape(-1)[order]
    tot = to_numpy(total_std, "total_std").reshape(-1)[order]
    epi = to_numpy(epistemic_std, "epistemic_std").reshape(-1)[order]
    ax.fill_between(xg, m - 2 * tot, m + 2 * tot, color="tab:blue", alpha=0.18, linewidth=0, label="±2 std total")
    ax.fill_between(xg, m - 2 * epi, m + 2 * epi, color="tab:orange", alpha=0.45, linewidth=0, label="±2 std epistemic")
    ax.plot(xg, m, color="tab:blue", linewidth=1.5, label="mean")
    if truth is not None:
        ax.plot(xg, to_numpy(truth, "truth").reshape(-1)[order], "k--", linewidth=0.8, label="truth")
    ax.scatter(to_numpy(x_train, "x_train").reshape(-1), to_numpy(y_train, "y_train").reshape(-1),
               s=9, color="black", zorder=3, label="train")
    y = to_numpy(y_train, "y_train")
    pad = 0.8 * (y.max() - y.min() + 1e-9)
    ax.set_ylim(y.min() - pad, y.max() + pad)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(True, alpha=0.25)
    if title:
        ax.set_title(title)
    return ax


def plot_calibration_curve(curves: Mapping[str, tuple[Any, Any]], ax: Axes | None = None, title: str | None = None) -> Axes:
    """Observed against expected proportion in central prediction intervals, one line per
    entry of ``curves`` (name -> ``(expected, observed)`` arrays), with the ideal diagonal."""
    if ax is None:
        ax = new_axes((4.2, 4.0))
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="ideal")
    for name, (expected, observed) in curves.items():
        ax.plot(to_numpy(expected, "expected"), to_numpy(observed, "observed"), linewidth=1.4, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("expected proportion in interval")
    ax.set_ylabel("observed proportion in interval")
    ax.grid(True, alpha=0.25)
    ax.legend(frameon=False, fontsize=7)
    ax.set_title(title or "Calibration")
    return ax


def plot_reliability_diagram(
    confidence: Any, accuracy: Any, count: Any, ax: Axes | None = None, title: str | None = None
) -> Axes:
    """Reliability diagram: per-bin accuracy (bars) against the bin's range, the bins' mean
    confidence (dots) and the diagonal; ``(B,)`` arrays from
    :func:`vbayes.metrics.reliability_curve`; empty bins are left blank."""
    if ax is None:
        ax = new_axes((3.6, 3.6))
    conf = to_numpy(confidence, "confidence")
    acc = to_numpy(accuracy, "accuracy")
    cnt = to_numpy(count, "count")
    n_bins = len(cnt)
    edges = np.linspace(0, 1, n_bins + 1)
    full = cnt > 0
    ax.bar(edges[:-1][full], acc[full], width=1.0 / n_bins, align="edge", color="tab:blue",
           alpha=0.7, edgecolor="white", label="accuracy")
    ax.plot(conf[full], acc[full], "o", color="tab:red", markersize=3, label="mean confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    if title:
        ax.set_title(title)
    return ax


def plot_entropy_histograms(
    in_dist: Any, out_dist: Mapping[str, Any], ax: Axes | None = None, title: str | None = None,
    xlabel: str = "predictive entropy (nats)",
) -> Axes:
    """Histograms (densities) of a per-input uncertainty score on in-distribution test inputs
    and on each named out-of-distribution set, on shared bins."""
    if ax is None:
        ax = new_axes((4.2, 3.2))
    arrays = {"in-distribution": to_numpy(in_dist, "in_dist").reshape(-1)}
    arrays.update({k: to_numpy(v, k).reshape(-1) for k, v in out_dist.items()})
    hi = max(float(a.max()) for a in arrays.values() if a.size) or 1.0
    bins = np.linspace(0.0, hi * 1.02, 30)
    for name, values in arrays.items():
        ax.hist(values, bins=bins, density=True, histtype="stepfilled" if name == "in-distribution" else "step",
                alpha=0.35 if name == "in-distribution" else 1.0, linewidth=1.4, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(frameon=False, fontsize=7)
    if title:
        ax.set_title(title)
    return ax
