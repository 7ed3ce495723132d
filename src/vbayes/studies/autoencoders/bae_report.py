"""The HTML report of a ``vbayes bae`` run: metrics, training curves, codes, reconstructions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vbayes.studies.autoencoders.views import decode_blend, encode_all, view_of
from vbayes.plots import (
    figure_for,
    plot_blending,
    plot_image_grid,
    plot_latent_clouds,
    plot_latent_map,
    plot_mean_std,
    plot_training_curves,
)
from vbayes.report import Report
from vbayes.report.notes import note_rows

#: metrics shown in the report's table, in this order (their meanings: :data:`vbayes.report.notes.NOTES`)
METRIC_KEYS = ("test_recon_nll", "test_elbo", "kl_per_example", "mean_predictive_std", "predictive_samples", "epochs",
               "best_epoch", "seconds_per_epoch", "train_examples")


def first_of_each_class(y: Tensor, limit: int = 10) -> list[int]:
    """Index of the first example of each class, in class order (at most ``limit``)."""
    out = []
    for cls in sorted(set(y.tolist()))[:limit]:
        out.append(int((y == cls).nonzero()[0]))
    return out


@torch.no_grad()
def write_bae_report(model: Any, data: Any, history: list[dict[str, Any]], metrics: dict[str, Any],
                     config: dict[str, Any], out_dir: str | Path, n_samples: int) -> Path:
    """Write ``out_dir/report.html`` (and ``figures/*.png``) for a trained Bayesian AE."""
    view = view_of("bae", model)
    device = next(model.parameters()).device
    x_test, y_test = data.x_test.to(device), data.y_test
    report = Report(f"Bayesian auto-encoder on {config['data']}", subtitle=config["command"])
    report.add_config(config)
    report.add_table("Test metrics", note_rows(metrics, METRIC_KEYS), caption="On the fixed binarised test set.")
    if history:
        ax = plot_training_curves(history, keys=("train_loss", "val_loss"), title="Negative ELBO per example")
        report.add_figure(figure_for(ax), "Training and validation loss (reconstruction NLL + KL(q(w) || p(w)) / N) per "
                          "epoch; the marked epoch's weights are kept.", name="training", heading="Training")
    idx = first_of_each_class(y_test.cpu())
    summary = model.sample_reconstructions(x_test[idx], n_samples)
    report.add_section("Codes and reconstructions")
    z = encode_all(view.point_code, x_test).cpu()
    ax = plot_latent_map(z, y_test, title="Test codes (posterior-mean weights)")
    n_clouds = min(4, len(idx))
    cap = f"Codes of the {len(z)} test digits under the posterior-mean weights, coloured by label"
    if model.latent == 2:
        plot_latent_clouds(summary.codes[:, :n_clouds].cpu(), ax=ax)
        cap += (f"; clouds: {n_samples} codes of inputs 1-{n_clouds} of the reconstruction figure under weight "
                "samples, crosses at their means")
    report.add_figure(figure_for(ax), cap + ".", name="latent_map")
    ax = plot_mean_std(summary.mean.cpu(), summary.std.cpu(), x_test[idx].cpu(),
                       title=f"Mean and std of {n_samples} reconstructions")
    report.add_figure(figure_for(ax), f"The first test digit of each class: input, per-pixel mean and standard deviation "
                      f"of {n_samples} reconstructions, one encoder weight sample each.", name="reconstructions")
    picks = idx[:2]
    grid = torch.cat([view.decode_mean(view.sample_code(x_test[i].unsqueeze(0).expand(10, *x_test.shape[1:])))
                      for i in picks])  # fmt: skip
    ax = plot_image_grid(grid.cpu(), ncols=10, title="10 sampled reconstructions per input")
    report.add_figure(figure_for(ax), "Individual reconstructions under 10 weight samples of inputs 1 and 2 "
                      "(one row each).", name="samples")
    a, b = (idx[2], idx[3]) if len(idx) > 3 else (idx[0], idx[-1])
    frames = decode_blend(view, x_test[a], x_test[b], 12).cpu()
    ax = plot_blending(frames, title=f"Blending a test {int(y_test[a])} into a test {int(y_test[b])}")
    report.add_figure(figure_for(ax), "Decoding 12 codes on the straight line between the codes of two test digits "
                      "(posterior-mean weights).", name="blending")
    return report.write(out_dir)
