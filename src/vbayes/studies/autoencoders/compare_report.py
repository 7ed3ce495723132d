"""The figures and tables of the AE / VAE / Bayesian-AE comparison, added to a report."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from vbayes.studies.autoencoders.views import AutoencoderView, decode_blend, encode_all
from vbayes.models.bae import ReconstructionSamples, sample_reconstructions
from vbayes.plots import (
    figure_for,
    plot_blending,
    plot_image_grid,
    plot_latent_clouds,
    plot_latent_map,
    plot_manifold,
    plot_mean_std,
    plot_reconstructions,
)
from vbayes.report.notes import display, highlights, legend

#: the measured columns of the comparison table, in this order (names and meanings: :data:`vbayes.report.notes.NOTES`)
METRIC_KEYS = ("knn_accuracy", "silhouette", "latent_mean", "latent_std", "blend_mean_change", "blend_max_change",
               "test_recon_nll", "mean_predictive_std")


def _vector(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"


def metric_rows(out: dict[str, Any], views: dict[str, AutoencoderView]) -> list[dict[str, Any]]:
    """One table row per model, the measured values under readable column names."""
    rows = []
    for key, view in views.items():
        row: dict[str, Any] = {"model": view.title}
        for name in METRIC_KEYS:
            value = out[key][name]
            row[display(name)] = _vector(value) if isinstance(value, list) else value
        rows.append(row)
    return rows


def _summaries(views: dict[str, AutoencoderView], x: Tensor, n_samples: int) -> dict[str, ReconstructionSamples]:
    out = {}
    for key, view in views.items():
        if view.sample_code is None:
            codes = view.point_code(x)
            recon = view.decode_mean(codes)
            out[key] = ReconstructionSamples(recon, torch.zeros_like(recon), codes.unsqueeze(0), 1)
        else:
            out[key] = sample_reconstructions(view.sample_code, view.decode_mean, x, n_samples)
    return out


def _latent_maps(report: Any, views: dict[str, AutoencoderView], data: Any, summaries: dict[str, ReconstructionSamples],
                 n_clouds: int, latent: int) -> None:
    items = []
    x, y = data.x_test, data.y_test
    for key, view in views.items():
        z = encode_all(view.point_code, x.to(next(view.model.parameters()).device))
        ax = plot_latent_map(z, y, title=f"{view.title}: test set codes")
        fig = figure_for(ax)
        fig.set_size_inches(5.6, 4.4)
        cap = f"{view.title}: codes of the {len(x)} test digits coloured by label"
        if view.stochastic and latent == 2:
            plot_latent_clouds(summaries[key].codes[:, :n_clouds], ax=ax)
            what = "z ~ q(z|x)" if key == "vae" else "weight samples"
            cap += (f"; clouds: {summaries[key].n_samples} sampled codes ({what}) of inputs 1-{n_clouds} "
                    "of the reconstruction figures, crosses at their means")
        elif key == "vae":
            cap += " (posterior means)"
        elif key == "bae":
            cap += " (posterior-mean weights)"
        items.append((fig, cap + ".", f"latent_{key}"))
    report.add_figures_row(items, heading="Latent maps")


def _reconstructions(report: Any, views: dict[str, AutoencoderView], x: Tensor,
                     summaries: dict[str, ReconstructionSamples], rows: list[dict[str, Any]]) -> None:
    std_max = max(float(s.std.max()) for s in summaries.values()) or 1e-6
    amb = [r["#"] for r in rows if r["chosen as"].startswith("ambiguous")]
    which = f"inputs {amb[0]}-{amb[-1]} were chosen as ambiguous" if amb else "no input was ambiguous"
    for key, view in views.items():
        s = summaries[key]
        if view.sample_code is None:
            ax = plot_reconstructions(x, s.mean, title=f"{view.title}: reconstructions")
            cap = f"{view.title}: inputs (top) and their one deterministic reconstruction ({which})."
        else:
            ax = plot_mean_std(s.mean, s.std, x, std_max=std_max, title=f"{view.title}: mean and std of {s.n_samples} reconstructions")
            src = "codes z ~ q(z|x)" if key == "vae" else "weight samples of the encoder"
            cap = (f"{view.title}: input, per-pixel mean and standard deviation over {s.n_samples} "
                   f"reconstructions from {src}; the std colour scale is shared by both stochastic models ({which}).")
        report.add_figure(figure_for(ax), cap, name=f"recon_{key}")


def _ambiguous_samples(report: Any, views: dict[str, AutoencoderView], x: Tensor, rows: list[dict[str, Any]]) -> None:
    picks = [r for r in rows if r["chosen as"].startswith("ambiguous")][:2]
    if not picks:
        report.add_text("", "No test input was judged ambiguous by the classifier for either stochastic model, "
                        "so no individual samples are shown.")
        return
    items = []
    for key, view in views.items():
        if view.sample_code is None:
            continue
        grid = []
        for r in picks:
            xi = x[r["#"] - 1].unsqueeze(0).expand(10, *x.shape[1:])
            grid.append(view.decode_mean(view.sample_code(xi)))
        ax = plot_image_grid(torch.cat(grid), ncols=10, title=f"{view.title}: 10 sampled reconstructions")
        labels = ", ".join(f"row {n + 1}: input {r['#']} (label {r['label']})" for n, r in enumerate(picks))
        items.append((figure_for(ax), f"{view.title}: individual sampled reconstructions of the most ambiguous inputs ({labels}).",
                      f"samples_{key}"))
    report.add_figures_row(items, heading="Sampled reconstructions of ambiguous inputs")


def _blends(report: Any, views: dict[str, AutoencoderView], data: Any, steps: int, pairs: list[tuple[int, int]]) -> None:
    x, y = data.x_test, data.y_test
    for i, j in pairs:
        a, b = int(y[i]), int(y[j])
        fig: Figure = plt.figure(figsize=(0.62 * steps + 1.0, 1.25 * len(views) + 0.3))
        axes = fig.subplots(len(views), 1)
        for ax, view in zip(axes, views.values()):
            dev = next(view.model.parameters()).device  # type: ignore[union-attr]
            plot_blending(decode_blend(view, x[i].to(dev), x[j].to(dev), steps), ax=ax)
            ax.set_title(view.title, fontsize=10, loc="left")
            if ax is not axes[-1]:
                ax.set_xlabel("")
        fig.tight_layout()
        report.add_figure(fig, f"Blending from a test {a} to a test {b} (the test digits of these classes the "
                          f"classifier is surest of): decoding {steps} codes on the straight line between their codes "
                          "(posterior means / posterior-mean weights), one row per model.", name=f"blend_{a}_{b}")


def add_comparison(report: Any, views: dict[str, AutoencoderView], data: Any, cfg: Any, out: dict[str, Any],
                   chosen: list[int], blend_pairs: list[tuple[int, int]]) -> None:
    """Add the comparison's sections (tables, latent maps, reconstructions, blends, manifold) to ``report``.

    ``chosen``: test indices of the inputs shown (ambiguous ones first); ``blend_pairs``: test
    index pairs to blend between.
    """
    dev = next(views["ae"].model.parameters()).device  # type: ignore[union-attr]
    x_show = data.x_test[chosen].to(dev)
    summaries = _summaries(views, x_show, cfg.samples)
    report.add_section("AE, VAE and Bayesian AE compared")
    report.add_text("", _intro(cfg, out))
    report.add_table("Measured latent space and reconstructions", metric_rows(out, views), caption=(
        f"{legend(METRIC_KEYS)}. Blends have {cfg.blend_steps} frames; the test set is binarised once (fixed); the "
        "predictive std is averaged over the searched test inputs."), highlight=highlights(METRIC_KEYS))
    _latent_maps(report, views, data, summaries, min(cfg.clouds, len(chosen)), cfg.latent)
    report.add_section("Reconstructions, ambiguous inputs included")
    report.add_table("The inputs shown", out["ambiguous"], caption=(
        "Each input's reconstructions judged by a digit classifier trained on the training split "
        f"(validation accuracy {out['classifier']['val_accuracy']:.1%}): the most frequent digit and the runner-up, with "
        f"their shares of the sampled reconstructions. An input counts as ambiguous when at least "
        f"{out['ambiguity_summary']['bae']['threshold']:.0%} of its reconstructions are judged to be its own digit and "
        "at least as many one other digit; the most ambiguous for the Bayesian AE come first, then for the VAE."))
    _reconstructions(report, views, x_show.cpu(), {k: _cpu(s) for k, s in summaries.items()}, out["ambiguous"])
    _ambiguous_samples(report, views, x_show, out["ambiguous"])
    report.add_section("Blending between digits")
    _blends(report, views, data, cfg.blend_steps, blend_pairs)
    report.add_section("Decoded manifold")
    vae = views["vae"]
    if cfg.latent == 2:
        ax = plot_manifold(vae.decode_mean, n=15, title="VAE: decoded prior quantiles")
        report.add_figure(figure_for(ax), "VAE decoder over a 15 x 15 grid of prior quantiles of its 2-D latent space "
                          "(inverse normal CDF of evenly spaced probabilities 0.05-0.95). The AE and the Bayesian AE "
                          "have no prior over their codes, so no such grid is defined for them.", name="manifold_vae")
    else:
        report.add_text("", f"The decoded manifold needs a 2-D latent space and a prior; this run has {cfg.latent}-D codes.")


def _cpu(s: ReconstructionSamples) -> ReconstructionSamples:
    return ReconstructionSamples(s.mean.cpu(), s.std.cpu(), s.codes.cpu(), s.n_samples)


def _intro(cfg: Any, out: dict[str, Any]) -> str:
    amb = out["ambiguity_summary"]
    lines = [
        f"Three auto-encoders with the same {cfg.arch.upper()} encoder and decoder (hidden width {cfg.hidden}, "
        f"{cfg.latent}-D code), trained for {cfg.epochs} epochs each with Adam (lr {cfg.lr}, batch {cfg.batch_size}): "
        "the AE (deterministic code, reconstruction loss only), the VAE (stochastic hidden units z ~ q(z|x) with a "
        f"N(0, I) prior) and the Bayesian AE (a {cfg.estimator} posterior over the encoder's weights, deterministic "
        "decoder, loss = reconstruction NLL + KL(weights)/N).",
        "",
        "Ambiguity search: every searched test input was reconstructed "
        f"{cfg.search_samples} times by each stochastic model and each reconstruction judged by the classifier.",
    ]
    for key, title in (("bae", "Bayesian AE"), ("vae", "VAE")):
        a = amb[key]
        pairs = ", ".join(f"{p} ({n})" for p, n in a["top_pairs"].items()) or "none"
        lines.append(f"{title}: {a['ambiguous']} of {a['searched']} inputs ambiguous; most frequent digit pairs: {pairs}.")
    return "\n".join(lines)
