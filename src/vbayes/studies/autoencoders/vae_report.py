"""Figures and the HTML report of a VAE/AE run (used by ``vbayes vae``/``ae`` and ``vbayes demo``).

:func:`autoencoder_figures` returns ``(Figure, caption, name)`` triples, ready for
``Report.add_figure``/``add_figures_row``; ``name`` becomes ``figures/<name>.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from matplotlib.figure import Figure
from torch import Tensor

from vbayes.models import VAE
from vbayes.plots import (
    figure_for,
    plot_blending,
    plot_latent_map,
    plot_manifold,
    plot_reconstructions,
    plot_samples,
    plot_training_curves,
)
from vbayes.report.notes import note_rows
from vbayes.studies.autoencoders.vae_run import AutoencoderRun

FigureItem = tuple[Figure, str, str]

#: metrics shown first in the report's table, in this order (their meanings: :data:`vbayes.report.notes.NOTES`)
METRIC_KEYS = ("test_elbo", "test_nll", "test_recon_nll", "test_kl", "val_elbo", "val_recon_nll", "iw_samples",
               "gaussian_std", "epochs", "best_epoch", "seconds_per_epoch", "train_examples")


def blend_pair(codes: Tensor, labels: Tensor, first: int = 2, second: int = 3) -> tuple[int, int]:
    """Indices of a typical test ``first`` and a typical ``second``: for each class, the example
    whose code ``(N, L)`` is nearest (Euclidean) to the coordinate-wise median code of that class.

    Falls back to examples 0 and 1 when a class is missing.
    """

    def typical(cls: int) -> int | None:
        idx = torch.nonzero(labels == cls).flatten()
        if idx.numel() == 0:
            return None
        members = codes[idx]
        centre = members.median(dim=0).values
        return int(idx[(members - centre).norm(dim=1).argmin()])

    a, b = typical(first), typical(second)
    if a is None or b is None:
        return 0, min(1, labels.shape[0] - 1)
    return a, b


def _codes(model: Any, x: Tensor) -> Tensor:
    """Encoder means (VAE) or codes (AE), ``(N, L)``."""
    out = model.encode(x)
    return out[0] if isinstance(out, tuple) else out


def _code_decoder(model: Any, codes: Tensor) -> tuple[Callable[[Tensor], Tensor], str]:
    """A decoder of 2-D grid points and the words that say what the grid means.

    For a VAE the grid is in prior quantiles; an AE has no prior, so its grid is mapped onto
    each code dimension's test-set mean and standard deviation (a Gaussian fit of its codes).
    """
    if isinstance(model, VAE):
        return model.decode_mean, "quantiles 5%..95% of the N(0, I) prior"
    mean, std = codes.mean(0), codes.std(0)
    return (lambda g: model.decode_mean(mean + std * g)), "quantiles 5%..95% of a Gaussian fitted to the AE's test codes"


@torch.no_grad()
def autoencoder_figures(
    run: AutoencoderRun,
    label: str | None = None,
    prefix: str = "",
    n_images: int = 10,
    seed: int = 0,
) -> list[FigureItem]:
    """Reconstructions, prior samples (VAE), latent map, manifold (2-D latent), blending, curves.

    Args:
        run: a trained run (its model, test images and labels, history).
        label: the model's name in captions (default "VAE"/"AE").
        prefix: prepended to every figure name (e.g. ``"vae_"`` when two models share a report).
        n_images: images in the reconstruction and blending rows.
        seed: seeds the prior samples.
    """
    model = run.model.eval()
    is_vae = isinstance(model, VAE)
    label = label or ("VAE" if is_vae else "AE")
    device = next(model.parameters()).device
    x, y = run.x_test.to(device), run.y_test
    codes = torch.cat([_codes(model, x[s : s + 500]) for s in range(0, x.shape[0], 500)]).cpu()
    items: list[FigureItem] = []
    shown = x[:n_images]
    ax = plot_reconstructions(shown.cpu(), model.reconstruct(shown).cpu(), title=f"{label}: reconstructions")
    items.append((figure_for(ax), f"{label}: test inputs (top) and mean reconstructions (bottom).", prefix + "reconstructions"))
    if is_vae:
        gen = torch.Generator(device=device).manual_seed(seed)
        ax = plot_samples(model.sample(50, generator=gen).cpu(), title=f"{label}: samples from the prior")
        items.append((figure_for(ax), f"{label}: mean images decoded from 50 draws z ~ N(0, I).", prefix + "samples"))
    latent = codes.shape[1]
    what = "encoder means" if is_vae else "codes"
    if latent > 2:
        caption = f"{label}: the {latent}-D {what} of the test set projected onto their first two principal components (PCA), coloured by digit."
    else:
        caption = f"{label}: {what} of the test set, coloured by digit."
    ax = plot_latent_map(codes, y, title=f"{label}: latent map" + (" (PCA projection)" if latent > 2 else ""))
    items.append((figure_for(ax), caption, prefix + "latent_map"))
    if latent == 2:
        decode, grid = _code_decoder(model, codes.to(device))
        ax = plot_manifold(lambda g: decode(g.to(device)).cpu(), n=15, title=f"{label}: decoded manifold")
        items.append((figure_for(ax), f"{label}: images decoded on a 15x15 grid over {grid}.", prefix + "manifold"))
    i, j = blend_pair(codes, y)
    za, zb = codes[i].to(device), codes[j].to(device)
    alphas = torch.linspace(0.0, 1.0, n_images, device=device)
    frames = model.decode_mean(za + alphas[:, None] * (zb - za))
    ax = plot_blending(frames.cpu(), title=f"{label}: blending a {int(y[i])} into a {int(y[j])}")
    items.append((figure_for(ax), f"{label}: decoding along the straight line between the codes of a typical test {int(y[i])} (example {i}) and a typical {int(y[j])} (example {j}), each the one nearest its class's median code.", prefix + "blending"))
    if run.history:
        ax = plot_training_curves(run.history, title=f"{label}: training curves")
        loss = "negative ELBO" if is_vae else "reconstruction NLL"
        items.append((figure_for(ax), f"{label}: {loss} per epoch on the training and validation sets (nats per example).", prefix + "training_curves"))
    return items


def metric_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics as ``[{"metric", "value", "meaning"}]`` rows, :data:`METRIC_KEYS` first."""
    return note_rows(metrics, METRIC_KEYS, others=True)


def write_autoencoder_report(run: AutoencoderRun, out_dir: str | Path, config: dict[str, Any], title: str) -> Path:
    """Write ``out_dir/report.html`` and ``out_dir/figures/*.png`` for one run; returns the page's path."""
    from vbayes.report import Report

    report = Report(title, subtitle=str(config.get("command", "")))
    report.add_config(config)
    report.add_table("Metrics", metric_rows(run.metrics), caption="Per-example numbers in nats.")
    report.add_section("Figures")
    for fig, caption, name in autoencoder_figures(run):
        report.add_figure(fig, caption, name=name)
    return report.write(out_dir)
