"""Shared plotting helpers: figure creation, PNG rendering, tensor conversion, training curves.

Every figure is a plain :class:`matplotlib.figure.Figure` drawn by the Agg renderer: nothing
here imports :mod:`matplotlib.pyplot`, selects a backend or opens a window, so plotting works on
headless machines and leaves no global state behind. Notebook users who want figures shown
inline pass their own ``ax`` (for example from ``plt.subplots()``).
"""

from __future__ import annotations

import inspect
import io
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vbayes.files import atomic_write_bytes

#: Resolution of rendered PNGs (dots per inch). Reports show them at 96 CSS px per inch,
#: so they stay sharp on high-density screens.
PNG_DPI = 144


def new_axes(figsize: tuple[float, float] = (6.0, 4.0)) -> Axes:
    """A fresh single-axes figure of ``figsize`` inches (constrained layout, Agg renderer)."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def figure_for(ax: Axes) -> Figure:
    """The top-level :class:`~matplotlib.figure.Figure` that holds ``ax``."""
    fig = ax.get_figure(root=True) if _GET_FIGURE_HAS_ROOT else ax.figure
    if not isinstance(fig, Figure):  # pragma: no cover - only for detached axes
        raise ValueError("figure_for: the axes are not attached to a figure")
    return fig


_GET_FIGURE_HAS_ROOT = "root" in inspect.signature(Axes.get_figure).parameters


def figure_to_png(fig: Figure, dpi: int = PNG_DPI) -> bytes:
    """Render ``fig`` to PNG bytes at ``dpi`` with a tight bounding box and white background."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = PNG_DPI) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically (temporary file, fsync, rename).

    The file is either absent/old or the complete new image, never half-written.
    """
    atomic_write_bytes(path, figure_to_png(fig, dpi=dpi))


def close_figure(fig: Figure) -> None:
    """Release ``fig``: drop it from pyplot's registry when pyplot made it, and clear it."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
    fig.clear()


def to_numpy(x: Any, name: str) -> np.ndarray:
    """``x`` (Tensor, array or nested sequence) as a float64 NumPy array; ``name`` is for errors."""
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").double().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a tensor or array of numbers, got {type(x).__name__}") from exc


def project_2d(z: Any) -> tuple[np.ndarray, np.ndarray]:
    """Project codes ``z`` of shape ``(N, D)`` onto their first two principal components.

    Returns ``(p, explained)``: ``p`` of shape ``(N, 2)`` and the fraction of the total variance
    explained by each of the two components, shape ``(2,)``. The sign of every component is
    fixed (largest absolute loading positive) so the picture is deterministic.
    """
    arr = to_numpy(z, "z")
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"project_2d: z must have shape (N, D) with D >= 2, got {arr.shape}")
    centred = arr - arr.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2]
    signs = np.sign(components[np.arange(2), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    total = float((s**2).sum())
    explained = (s[:2] ** 2) / total if total > 0 else np.zeros(2)
    return centred @ components.T, explained


def plot_training_curves(
    history: Sequence[Mapping[str, Any]],
    keys: Sequence[str] = ("train_loss", "val_loss"),
    ax: Axes | None = None,
    title: str | None = None,
    ylabel: str = "loss (nats per example)",
) -> Axes:
    """Line plot of per-epoch values from a training history.

    Args:
        history: one mapping per epoch (e.g. the rows of ``log.csv``); the x value is the
            record's ``"epoch"`` when present, else its 1-based position. Values may be numbers
            or numeric strings; missing or non-finite values leave a gap.
        keys: the columns to draw; keys absent from every record are skipped.
        ax: axes to draw into; a new figure is created when ``None``.
        title, ylabel: optional labels.

    Returns:
        The axes drawn into. The minimum of ``val_loss`` (when drawn) is marked.

    Raises:
        ValueError: ``history`` is empty or none of ``keys`` occurs in it.
    """
    if len(history) == 0:
        raise ValueError("plot_training_curves: history is empty")
    present = [k for k in keys if any(k in row for row in history)]
    if not present:
        available = sorted({k for row in history for k in row})
        raise ValueError(f"plot_training_curves: none of {list(keys)} in history (has {available})")
    if ax is None:
        ax = new_axes((6.0, 3.6))
    epochs = np.array([_as_float(row.get("epoch", i + 1)) for i, row in enumerate(history)])
    for key in present:
        values = np.array([_as_float(row.get(key)) for row in history])
        marker = "o" if len(history) <= 40 else None
        (line,) = ax.plot(epochs, values, marker=marker, markersize=3, linewidth=1.6, label=key)
        if key == "val_loss" and np.isfinite(values).any():
            best = int(np.nanargmin(np.where(np.isfinite(values), values, np.nan)))
            ax.plot(epochs[best], values[best], marker="*", markersize=12, color=line.get_color(),
                    linestyle="none", label=f"best val ({values[best]:.4g}, epoch {epochs[best]:g})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return ax


def _as_float(value: Any) -> float:
    """``value`` as a float; ``None``, empty strings and non-numbers become NaN."""
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
