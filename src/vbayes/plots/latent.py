"""Figures of latent spaces: the map of encoded data coloured by class, and clouds of sampled codes.

Both take an optional ``ax`` and return it. Codes with more than two dimensions are projected
onto their first two principal components, and the title says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from torch import Tensor

from vbayes.plots.common import figure_for, new_axes, project_2d, to_numpy

_MAX_DISCRETE = 20  # up to this many integer classes get a legend, more get a colour bar


def _class_colours(n_classes: int) -> list[Any]:
    cmap = colormaps["tab10" if n_classes <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n_classes)]


def plot_latent_map(z: Tensor | np.ndarray, labels: Tensor | np.ndarray | None, ax: Axes | None = None,
                    projected: bool = False, title: str | None = None, legend_title: str = "label") -> Axes:
    """Scatter of codes ``z`` ``(N, D)`` coloured by ``labels`` ``(N,)`` (e.g. the digit).

    Args:
        z: codes, e.g. the encoder means of the test set. ``D == 2`` is drawn as is; ``D > 2`` is
            projected onto its first two principal components (the title says so, with the
            share of variance kept); ``D == 1`` is drawn against the label (a strip plot).
        labels: integer classes (a legend, up to 20 classes) or any numbers (a colour bar);
            ``None`` draws every point in one colour.
        projected: ``z`` is already a 2-D projection of a larger latent space (e.g. t-SNE); the
            axes are then called "component 1/2" instead of ``z_1``/``z_2``.
        title: the title; a default one is used when ``None``.
        legend_title: the name of the labels (e.g. "digit") in the legend or on the colour bar.
    """
    codes = to_numpy(z, "z")
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise ValueError(f"plot_latent_map: z must have shape (N, D) with N >= 1, got {codes.shape}")
    n, d = codes.shape
    lab = None if labels is None else to_numpy(labels, "labels").reshape(-1)
    if lab is not None and lab.shape[0] != n:
        raise ValueError(f"plot_latent_map: {lab.shape[0]} labels for {n} codes")
    if ax is None:
        ax = new_axes((6.0, 5.0))
    default_title = "Latent space"
    xlabel, ylabel = ("component 1", "component 2") if projected else ("$z_1$", "$z_2$")
    if d == 1:
        base = lab if lab is not None else np.zeros(n)
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, n)  # fixed, for a stable picture
        codes = np.stack([codes[:, 0], base + jitter], axis=1)
        ylabel = f"{legend_title} (jittered)" if lab is not None else ""
    elif d > 2:
        codes, explained = project_2d(codes)
        default_title = f"Latent space (PCA projection of {d}-D codes, {explained.sum():.0%} of variance)"
        xlabel, ylabel = "principal component 1", "principal component 2"
    size = 10 if n <= 2000 else 4
    if lab is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=size, alpha=0.7, linewidths=0, rasterized=True)
    elif np.all(lab == np.round(lab)) and len(np.unique(lab)) <= _MAX_DISCRETE:
        classes = np.unique(lab).astype(int)
        # colour by class value when it is a small index (digit 3 is always the same colour)
        by_value = classes.min() >= 0 and classes.max() < _MAX_DISCRETE
        colours = _class_colours(int(classes.max()) + 1 if by_value else len(classes))
        for i, cls in enumerate(classes):
            mask = lab == cls
            colour = colours[cls] if by_value else colours[i]
            ax.scatter(codes[mask, 0], codes[mask, 1], s=size, alpha=0.75, linewidths=0,
                       color=colour, label=str(cls), rasterized=True)
        ax.legend(title=legend_title, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False,
                  markerscale=2.0, handletextpad=0.2, borderaxespad=0.0)
    else:
        points = ax.scatter(codes[:, 0], codes[:, 1], c=lab, s=size, alpha=0.8, linewidths=0,
                            cmap="viridis", rasterized=True)
        figure_for(ax).colorbar(points, ax=ax, label=legend_title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.25)
    ax.set_title(title if title is not None else default_title)
    return ax


def plot_latent_clouds(z_samples: Tensor | np.ndarray, ax: Axes | None = None,
                       labels: Tensor | np.ndarray | None = None, title: str | None = None,
                       max_points: int = 300) -> Axes:
    """Clouds of sampled codes for a few inputs: ``z_samples`` ``(S, M, D)``, S samples of M inputs.

    Each input's S codes are drawn in their own colour with the cloud's mean marked by a
    black-edged cross, so the spread of the code distribution (VAE: over ``z``; Bayesian AE:
    over the encoder weights) is visible. Draw it over :func:`plot_latent_map` by passing the
    same ``ax``; the axes limits and labels of an existing plot are kept.

    Args:
        z_samples: ``(S, M, 2)``; ``D > 2`` is projected onto its first two principal components.
        labels: ``(M,)`` classes of the inputs, shown in the legend.
        max_points: at most this many samples per input are drawn (the mean uses all S).
    """
    zs = to_numpy(z_samples, "z_samples")
    if zs.ndim != 3 or zs.shape[0] == 0 or zs.shape[1] == 0 or zs.shape[2] < 2:
        raise ValueError(f"plot_latent_clouds: z_samples must have shape (S, M, D) with D >= 2, got {zs.shape}")
    s, m, d = zs.shape
    lab = None if labels is None else to_numpy(labels, "labels").reshape(-1)
    if lab is not None and lab.shape[0] != m:
        raise ValueError(f"plot_latent_clouds: {lab.shape[0]} labels for {m} inputs")
    projected = d > 2
    if projected:
        zs = project_2d(zs.reshape(s * m, d))[0].reshape(s, m, 2)
    fresh = ax is None
    if ax is None:
        ax = new_axes((6.0, 5.0))
    palette = colormaps["Dark2"]
    shown = zs[:max_points]
    for j in range(m):
        colour = palette(j % palette.N)
        name = f"input {j + 1}" + ("" if lab is None else f" (label {lab[j]:g})")
        ax.scatter(shown[:, j, 0], shown[:, j, 1], s=9, alpha=0.5, color=colour, linewidths=0,
                   label=name, rasterized=True)
        centre = zs[:, j].mean(axis=0)
        ax.scatter([centre[0]], [centre[1]], s=70, marker="X", color=colour, edgecolors="black",
                   linewidths=0.8, zorder=5)
        ax.annotate(str(j + 1), (centre[0], centre[1]), xytext=(6, 6), textcoords="offset points",
                    fontsize=9, fontweight="bold", color="black", zorder=6)
    if fresh:
        ax.set_xlabel("principal component 1" if projected else "$z_1$")
        ax.set_ylabel("principal component 2" if projected else "$z_2$")
        ax.grid(True, alpha=0.25)
        ax.legend(loc="best", frameon=False, markerscale=2.0, fontsize="small")
        ax.set_title(title if title is not None else f"Sampled codes ({s} per input)"
                     + (", PCA projection" if projected else ""))
    elif title is not None:
        ax.set_title(title)
    return ax

