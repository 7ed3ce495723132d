"""Composite figures of a method comparison (one panel per method), built from the ``plot_*``
functions of :mod:`vbayes.plots.uq`."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from vbayes.data.tabular import RegressionData
from vbayes.metrics import calibration_curve, mutual_information, predictive_entropy, reliability_curve
from vbayes.plots.uq import (
    plot_calibration_curve,
    plot_entropy_histograms,
    plot_predictive_bands,
    plot_reliability_diagram,
)
from vbayes.studies.uq.pipeline import MethodResult

DISPLAY = {
    "output": "output only", "bbb": "BBB", "flipout": "Flipout", "lrt": "LRT", "dropout": "MC dropout",
    "ensemble": "ensemble", "sgld": "SGLD", "hmc": "HMC", "mvg": "MVG", "bbalpha": "BB-α", "pbp": "PBP",
    "vd": "VD", "bbh": "BBH",
}


def display(name: str) -> str:
    """Human name of a method key."""
    return DISPLAY.get(name, name)


def _grid(n: int, cols: int, panel: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(panel[0] * cols, panel[1] * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes[:n]


def _panels(results: Mapping[str, MethodResult], draw: Callable[[str, MethodResult, Axes], None],
            cols: int = 4, panel: tuple[float, float] = (3.6, 3.0)) -> Figure | None:
    ok = {k: r for k, r in results.items() if r.ok}
    if not ok:
        return None
    fig, axes = _grid(len(ok), cols, panel)
    for (name, res), ax in zip(ok.items(), axes):
        draw(name, res, ax)
    return fig


def bands_figure(results: Mapping[str, MethodResult], data: RegressionData,
                 truth: Callable[[Any], Any] | None = None) -> Figure | None:
    """Predictive bands of every successful method on a 1-D toy, side by side; dotted lines mark
    where the toy-gap epistemic ratios are measured (gap middle, extrapolation points). When HMC
    ran, every other panel also draws HMC's mean +- 2 epistemic std (red dash-dots), so each band
    is seen beside the reference, as in Yao et al. (2019)'s figures."""
    if data.x_grid is None:
        return None
    hmc = results.get("hmc")
    ref = hmc.predictions["grid"] if hmc is not None and hmc.ok else None
    xs = data.x_grid[:, 0]

    def draw(name: str, res: MethodResult, ax: Axes) -> None:
        grid = res.predictions["grid"]
        plot_predictive_bands(
            data.x_train, data.y_train, data.x_grid, grid.mean, grid.total_var.sqrt(), grid.epistemic_var.sqrt(),
            ax=ax, title=display(name), truth=truth(xs) if truth is not None else None,
        )
        if ref is not None and name != "hmc":
            for sign, label in ((1, "HMC ±2 std epistemic"), (-1, None)):
                ax.plot(xs, ref.mean + sign * 2 * ref.epistemic_var.sqrt(), color="crimson", linestyle="-.",
                        linewidth=0.9, label=label)
        marks = ([data.meta["gap_middle"]] if "gap_middle" in data.meta else []) + list(data.meta.get("extrapolation", []))
        for x in marks:
            ax.axvline(x, color="grey", linestyle=":", linewidth=0.9)

    fig = _panels(results, draw)
    if fig is not None:
        first = next((ax for ax, name in zip(fig.axes, (k for k, r in results.items() if r.ok)) if name != "hmc"),
                     fig.axes[0])
        first.legend(frameon=False, fontsize=6, loc="upper left")
    return fig


def calibration_figure(results: Mapping[str, MethodResult], y_test: Any, title: str = "Calibration") -> Figure | None:
    """All methods' interval calibration curves on one axes."""
    curves = {display(k): calibration_curve(r.predictions["test"], y_test) for k, r in results.items() if r.ok}
    if not curves:
        return None
    ax = plot_calibration_curve(curves, title=title)
    return ax.get_figure()


def reliability_figure(results: Mapping[str, MethodResult], y_test: Any) -> Figure | None:
    """One reliability diagram (15 bins) per method."""

    def draw(name: str, res: MethodResult, ax: Axes) -> None:
        conf, acc, cnt = reliability_curve(res.predictions["test"], y_test)
        ece = res.metrics.get("ece")
        plot_reliability_diagram(conf, acc, cnt, ax=ax, title=f"{display(name)} (ECE {ece:.3f})")

    fig = _panels(results, draw, panel=(3.0, 3.0))
    for ax in (fig.axes[1:] if fig is not None else []):
        if ax.get_legend() is not None:
            ax.get_legend().remove()  # one legend is enough; it hides bars on the others
    return fig


def entropy_figure(results: Mapping[str, MethodResult], score: str = "entropy") -> Figure | None:
    """Histograms of predictive entropy (or mutual information) in and out of distribution, per method."""
    fn = predictive_entropy if score == "entropy" else mutual_information
    label = "predictive entropy (nats)" if score == "entropy" else "mutual information (nats)"

    def draw(name: str, res: MethodResult, ax: Axes) -> None:
        outs = {k[4:]: fn(p) for k, p in res.predictions.items() if k.startswith("ood:")}
        auc = res.metrics.get(f"auroc_{'entropy' if score == 'entropy' else 'mi'}")
        title = display(name) + (f" (AUROC {auc:.3f})" if isinstance(auc, float) else "")
        plot_entropy_histograms(fn(res.predictions["test"]), outs, ax=ax, title=title, xlabel=label)

    return _panels(results, draw)
