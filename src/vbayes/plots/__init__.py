"""Plotting functions for vbayes results (matplotlib, Agg renderer, no pyplot state).

Every ``plot_*`` function takes an optional ``ax`` (a new figure is created when it is
``None``) and returns the axes it drew into, so figures compose in grids, notebooks and
:class:`vbayes.report.Report`. Use :func:`figure_for` to get the figure of an axes.
"""

from __future__ import annotations

from vbayes.plots.common import (
    PNG_DPI,
    close_figure,
    figure_for,
    figure_to_png,
    new_axes,
    plot_training_curves,
    project_2d,
    save_figure,
)
from vbayes.plots.images import (
    manifold_grid,
    plot_blending,
    plot_image_grid,
    plot_manifold,
    plot_mean_std,
    plot_reconstructions,
    plot_samples,
)
from vbayes.plots.latent import plot_latent_clouds, plot_latent_map
from vbayes.plots.uq import (
    plot_calibration_curve,
    plot_entropy_histograms,
    plot_predictive_bands,
    plot_reliability_diagram,
)

__all__ = [
    "PNG_DPI",
    "close_figure",
    "figure_for",
    "figure_to_png",
    "manifold_grid",
    "new_axes",
    "plot_blending",
    "plot_calibration_curve",
    "plot_entropy_histograms",
    "plot_image_grid",
    "plot_latent_clouds",
    "plot_latent_map",
    "plot_manifold",
    "plot_mean_std",
    "plot_predictive_bands",
    "plot_reconstructions",
    "plot_reliability_diagram",
    "plot_samples",
    "plot_training_curves",
    "project_2d",
    "save_figure",
]
