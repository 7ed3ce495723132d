"""Figures for image models (VAE, AE, Bayesian AE): grids, reconstructions, latent maps, manifolds.

Every function takes an optional ``ax`` (a new figure is made when ``None``) and returns the
axes it drew into. Images are ``(N, C, H, W)`` tensors or arrays with pixels in [0, 1]
(``C`` is 1 for grey or 3 for colour); values outside [0, 1] are clipped for display.
Images are tiled into mosaics with white gaps, each mosaic drawn as one ``AxesImage``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.image import AxesImage
from torch import Tensor

from vbayes.plots.common import figure_for, new_axes, to_numpy

_PAD = 2  # gap between tiles, in pixels
_GREY = "gray"  # white strokes on black, the usual MNIST look
_STD_CMAP = "magma"


def _images(x: Any, name: str) -> np.ndarray:
    """``x`` as a float array ``(N, C, H, W)`` clipped to [0, 1]; ``C`` must be 1 or 3."""
    arr = to_numpy(x, name)
    if arr.ndim == 3:  # (N, H, W) grey images
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.shape[0] == 0:
        raise ValueError(f"{name}: expected images of shape (N, C, H, W) with C in (1, 3) and N >= 1, "
                         f"got {tuple(arr.shape)}")
    return np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0)


def _mosaic(x: np.ndarray, ncols: int, pad: int = _PAD) -> np.ndarray:
    """Tile ``x`` ``(N, C, H, W)`` row by row, ``ncols`` per row, ``pad`` pixels apart.

    Returns ``(rows*(H+pad)-pad, cols*(W+pad)-pad)`` for grey images (a masked array whose gaps
    are masked, so they show the axes background) or ``(..., ..., 3)`` for colour (gaps white).
    """
    n, c, h, w = x.shape
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    shape = (rows * (h + pad) - pad, cols * (w + pad) - pad)
    canvas = np.ones(shape + (c,))
    filled = np.zeros(shape, dtype=bool)
    for i in range(n):
        r, k = divmod(i, cols)
        top, left = r * (h + pad), k * (w + pad)
        canvas[top:top + h, left:left + w] = x[i].transpose(1, 2, 0)
        filled[top:top + h, left:left + w] = True
    if c == 1:
        return np.ma.masked_array(canvas[..., 0], mask=~filled)
    return canvas


def _show(ax: Axes, mosaic: np.ndarray, left: float = 0.0, top: float = 0.0,
          cmap: str = _GREY, vmin: float = 0.0, vmax: float = 1.0) -> AxesImage:
    """Draw ``mosaic`` with its top-left corner at ``(left, top)`` in pixel units (y downwards)."""
    h, w = mosaic.shape[:2]
    return ax.imshow(mosaic, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                     extent=(left, left + w, top + h, top), origin="upper")


def _frame(ax: Axes, width: float, height: float) -> None:
    """Pixel-unit limits with y pointing down, square pixels, white background, no spines."""
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_aspect("equal")
    ax.set_facecolor("white")
    for spine in ax.spines.values():
        spine.set_visible(False)


def _tile_axes(n: int, h: int, w: int, ncols: int, pad: int = _PAD, rows_per_tile: int = 1,
               scale: float = 0.55) -> Axes:
    """New axes sized so that ``n`` tiles of ``h x w`` in ``ncols`` columns look right."""
    cols = min(ncols, n)
    rows = math.ceil(n / cols) * rows_per_tile
    width = min(max(cols * scale, 3.0), 12.0)
    height = width * rows * (h + pad) / (cols * (w + pad)) + 0.4
    return new_axes((width, height))


def plot_image_grid(x: Tensor | np.ndarray, ax: Axes | None = None, ncols: int = 10,
                    title: str | None = None) -> Axes:
    """Show images ``x`` ``(N, C, H, W)`` in a grid of ``ncols`` columns (one ``AxesImage``)."""
    if ncols < 1:
        raise ValueError(f"plot_image_grid: ncols must be >= 1, got {ncols}")
    imgs = _images(x, "x")
    n, _, h, w = imgs.shape
    if ax is None:
        ax = _tile_axes(n, h, w, ncols)
    mosaic = _mosaic(imgs, ncols)
    _show(ax, mosaic)
    _frame(ax, mosaic.shape[1], mosaic.shape[0])
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def plot_samples(x: Tensor | np.ndarray, ax: Axes | None = None, ncols: int = 10,
                 title: str | None = "Samples from the prior") -> Axes:
    """Grid of decoded prior samples ``x`` ``(N, C, H, W)``; :func:`plot_image_grid` with a title."""
    return plot_image_grid(x, ax=ax, ncols=ncols, title=title)


@dataclass
class _Band:
    """One labelled row of images in a banded figure."""

    images: np.ndarray  # (N, C, H, W)
    label: str
    cmap: str = _GREY
    vmin: float = 0.0
    vmax: float = 1.0


def _draw_bands(ax: Axes, bands: Sequence[_Band], ncols: int) -> list[AxesImage]:
    """Draw aligned rows (e.g. input / output) of equally many images, wrapping every ``ncols``.

    Each wrapped group repeats the bands; groups are separated by a wider gap.
    """
    n, _, h, w = bands[0].images.shape
    cols = min(ncols, n)
    groups = math.ceil(n / cols)
    band_h = h + _PAD
    group_h = len(bands) * band_h + 3 * _PAD
    drawn: list[AxesImage] = []
    ticks: list[float] = []
    labels: list[str] = []
    for g in range(groups):
        for b, band in enumerate(bands):
            top = g * group_h + b * band_h
            chunk = band.images[g * cols:(g + 1) * cols]
            drawn.append(_show(ax, _mosaic(chunk, cols), top=top, cmap=band.cmap,
                               vmin=band.vmin, vmax=band.vmax))
            ticks.append(top + h / 2)
            labels.append(band.label)
    _frame(ax, cols * (w + _PAD) - _PAD, groups * group_h - 3 * _PAD - _PAD)
    ax.set_xticks([])
    ax.set_yticks(ticks, labels)
    ax.tick_params(axis="y", length=0)
    return drawn


def _check_same(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


def plot_reconstructions(x: Tensor | np.ndarray, x_hat: Tensor | np.ndarray, ax: Axes | None = None,
                         title: str | None = None, ncols: int = 10) -> Axes:
    """Inputs ``x`` in the top row and their reconstructions ``x_hat`` below, both ``(N, C, H, W)``.

    With more than ``ncols`` images the pairs of rows wrap.
    """
    xs, xh = _images(x, "x"), _images(x_hat, "x_hat")
    _check_same(xs, xh, "plot_reconstructions: x and x_hat")
    n, _, h, w = xs.shape
    if ax is None:
        ax = _tile_axes(n, h, w, ncols, rows_per_tile=2)
    _draw_bands(ax, [_Band(xs, "input"), _Band(xh, "reconstruction")], ncols)
    if title:
        ax.set_title(title)
    return ax


def plot_mean_std(mean: Tensor | np.ndarray, std: Tensor | np.ndarray,
                  x: Tensor | np.ndarray | None = None, ax: Axes | None = None,
                  title: str | None = None, ncols: int = 10, std_max: float | None = None) -> Axes:
    """Rows: input ``x`` (optional), the mean reconstruction and its per-pixel standard deviation.

    Args:
        mean, std: ``(N, C, H, W)``; the mean in [0, 1], the std >= 0 (pixel units).
        x: ``(N, C, H, W)`` inputs, or ``None`` to omit the input row.
        std_max: top of the std colour scale; the largest std when ``None``. Pass the same value
            to several plots to compare models on one scale.

    The std row has its own colour scale (``magma``) with a colour bar.
    """
    mu = _images(mean, "mean")
    sd = to_numpy(std, "std")
    if sd.ndim == 3:
        sd = sd[:, None]
    _check_same(mu, sd, "plot_mean_std: mean and std")
    if np.nanmin(sd) < 0:
        raise ValueError("plot_mean_std: std has negative values")
    top = float(std_max) if std_max is not None else max(float(np.nanmax(sd)), 1e-12)
    bands = [] if x is None else [_Band(_images(x, "x"), "input")]
    if bands:
        _check_same(bands[0].images, mu, "plot_mean_std: x and mean")
    bands += [_Band(mu, "mean"), _Band(np.nan_to_num(sd), "std", cmap=_STD_CMAP, vmin=0.0, vmax=top)]
    n, c, h, w = mu.shape
    if c != 1:
        bands[-1].images = bands[-1].images.mean(axis=1, keepdims=True)
    if ax is None:
        ax = _tile_axes(n, h, w, ncols, rows_per_tile=len(bands))
    drawn = _draw_bands(ax, bands, ncols)
    figure_for(ax).colorbar(drawn[len(bands) - 1], ax=ax, label="per-pixel std", shrink=0.8, pad=0.02)
    if title:
        ax.set_title(title)
    return ax


def plot_blending(frames: Tensor | np.ndarray, ax: Axes | None = None, title: str | None = None,
                  alphas: Sequence[float] | None = None) -> Axes:
    """One row of ``T`` decoded frames ``(T, C, H, W)`` along a path between two codes.

    The x axis is labelled with the interpolation weight ``alphas`` (default ``linspace(0, 1, T)``).
    """
    imgs = _images(frames, "frames")
    t, _, h, w = imgs.shape
    weights = np.linspace(0.0, 1.0, t) if alphas is None else np.asarray(alphas, dtype=float)
    if weights.shape != (t,):
        raise ValueError(f"plot_blending: {len(weights)} alphas for {t} frames")
    if ax is None:
        ax = _tile_axes(t, h, w, t, scale=0.7)
    mosaic = _mosaic(imgs, t)
    _show(ax, mosaic)
    _frame(ax, mosaic.shape[1], mosaic.shape[0])
    step = max(1, math.ceil(t / 6))
    idx = sorted(set(range(0, t, step)) | {t - 1})
    ax.set_xticks([i * (w + _PAD) + w / 2 for i in idx], [f"{weights[i]:.2g}" for i in idx])
    ax.set_xlabel("interpolation weight")
    ax.set_yticks([])
    ax.tick_params(axis="x", length=0)
    if title:
        ax.set_title(title)
    return ax


def manifold_grid(n: int = 15, quantile_range: tuple[float, float] = (0.05, 0.95)) -> tuple[Tensor, Tensor]:
    """The 2-D latent grid of :func:`plot_manifold`.

    Returns ``(values, z)``: ``values`` ``(n,)`` are the standard-normal quantiles of ``n`` evenly
    spaced probabilities in ``quantile_range``; ``z`` ``(n*n, 2)`` float32 lists the grid in
    image order, rows from the largest ``z[1]`` (top) down, columns from the smallest ``z[0]``.
    """
    lo, hi = quantile_range
    if n < 1:
        raise ValueError(f"manifold_grid: n must be >= 1, got {n}")
    if not 0.0 < lo < hi < 1.0:
        raise ValueError(f"manifold_grid: quantile_range must satisfy 0 < lo < hi < 1, got {quantile_range}")
    probs = torch.linspace(lo, hi, n, dtype=torch.float64)
    values = torch.distributions.Normal(0.0, 1.0).icdf(probs)
    z1, z0 = torch.meshgrid(values.flip(0), values, indexing="ij")
    z = torch.stack([z0.reshape(-1), z1.reshape(-1)], dim=1).to(torch.float32)
    return values, z


def plot_manifold(decode: Callable[[Tensor], Tensor], n: int = 15, ax: Axes | None = None,
                  quantile_range: tuple[float, float] = (0.05, 0.95), title: str | None = None) -> Axes:
    """Decode a ``n x n`` grid of prior quantiles of a 2-D latent space and tile the images.

    Args:
        decode: maps codes ``(K, 2)`` (float32, CPU) to images ``(K, C, H, W)`` in [0, 1]
            (e.g. Bernoulli means); called once, under ``torch.no_grad()``, with ``K = n*n``.
        n: grid points per axis.
        quantile_range: probabilities of the first and last grid points; the grid values are
            ``Phi^{-1}`` (inverse standard-normal CDF) of evenly spaced probabilities, so equal
            steps hold equal prior mass. See :func:`manifold_grid` for the order.

    The axes are labelled with the ``z[0]`` (horizontal) and ``z[1]`` (vertical) values.
    """
    values, z = manifold_grid(n, quantile_range)
    with torch.no_grad():
        decoded = decode(z)
    imgs = _images(decoded, "decode(z)")
    if imgs.shape[0] != n * n:
        raise ValueError(f"plot_manifold: decode returned {imgs.shape[0]} images for {n * n} codes")
    _, _, h, w = imgs.shape
    if ax is None:
        ax = new_axes((6.2, 6.0))
    mosaic = _mosaic(imgs, n, pad=0)
    _show(ax, mosaic)
    _frame(ax, n * w, n * h)
    step = max(1, math.ceil(n / 8))
    idx = list(range(0, n, step))
    vals = values.tolist()
    ax.set_xticks([i * w + w / 2 for i in idx], [f"{vals[i]:.2f}" for i in idx])
    ax.set_yticks([i * h + h / 2 for i in idx], [f"{vals[n - 1 - i]:.2f}" for i in idx])
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    for spine in ax.spines.values():
        spine.set_visible(True)
    if title:
        ax.set_title(title)
    return ax
