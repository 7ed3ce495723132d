"""``vbayes compare-ae``: AE, VAE and Bayesian AE with matched networks, side by side in one report."""

from __future__ import annotations

import argparse
from pathlib import Path

from vbayes.cli.commands._common import add_image_model_args, add_run_args, check_fits, positive_int, prepare_out, resolve_device
from vbayes.cli.config import repeat_command
from vbayes.errors import VBayesError
from vbayes.layers.registry import ESTIMATORS
from vbayes.studies.autoencoders.compare import CompareConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare-ae", help="compare AE, VAE and Bayesian AE latent spaces and reconstructions",
        description="Train an AE, a VAE and a Bayesian AE (Flipout encoder) with the same networks; write "
                    "config.json, metrics.json (one object per model), ambiguous.json, ae/ vae/ bae/ checkpoints, "
                    "figures/ and report.html into --out.",
    )  # fmt: skip
    add_image_model_args(parser, CompareConfig, likelihood=False)
    parser.add_argument("--latent", type=int, default=CompareConfig.latent,
                        help=f"code size of every model (default {CompareConfig.latent})")
    parser.add_argument("--estimator", default=CompareConfig.estimator, choices=ESTIMATORS,
                        help=f"sampling of the Bayesian AE's layers (default {CompareConfig.estimator})")
    parser.add_argument("--samples", type=int, default=CompareConfig.samples,
                        help=f"samples S per shown input for reconstruction mean/std and code clouds "
                             f"(default {CompareConfig.samples})")
    parser.add_argument("--search-samples", type=int, default=CompareConfig.search_samples,
                        help=f"samples per test input in the search for ambiguous inputs "
                             f"(default {CompareConfig.search_samples})")
    parser.add_argument("--search-inputs", type=positive_int, default=None,
                        help="search only the first N test inputs (default: all)")
    parser.add_argument("--iw-samples", type=positive_int, default=CompareConfig.iw_samples,
                        help=f"importance samples K of the VAE's test NLL (default {CompareConfig.iw_samples})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_run_args(parser, default_out="runs/ae-compare", resumable=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``vbayes compare-ae``: returns the exit status (user errors raise :class:`VBayesError`)."""
    import torch

    from vbayes import __version__
    from vbayes.studies.autoencoders.compare import check_image_data, compare_autoencoders
    from vbayes.data import load
    from vbayes.files import write_json
    from vbayes.report import Report
    from vbayes.files import json_ready
    from vbayes.cli.runs import stage_run

    for name in ("latent", "samples", "search_samples"):
        if getattr(args, name) < 1:
            raise VBayesError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    resolve_device(args.device)
    options = dict(arch=args.arch, hidden=args.hidden, estimator=args.estimator, batch_size=args.batch_size,
                   lr=args.lr, samples=args.samples, search_samples=args.search_samples,
                   search_inputs=args.search_inputs, iw_samples=args.iw_samples, device=args.device,
                   progress=not args.no_progress)  # fmt: skip
    CompareConfig(latent=args.latent, epochs=args.epochs, seed=args.seed, **options).check()  # type: ignore[arg-type]
    data = load(args.data, data_dir=args.data_dir)
    check_image_data(data, args.arch)
    check_fits(data.image_shape, args.hidden, args.latent, samples=args.iw_samples, n_test=len(data.x_test),
               samples_option="--iw-samples")
    config = {
        "command": repeat_command(args),
        "data": args.data,
        "image_shape": list(data.image_shape),
        "options": {"latent": args.latent, "epochs": args.epochs, "seed": args.seed, **options},
        "versions": {"vbayes": __version__, "torch": torch.__version__},
    }
    existed = Path(args.out).exists()
    out = prepare_out(args.out, args.overwrite, resume=args.resume)
    with stage_run(out, not existed, args.resume, args.overwrite, config["command"]) as staged:
        report = Report(f"AE, VAE and Bayesian AE on {args.data}", subtitle=config["command"])
        report.add_config(config)
        result = compare_autoencoders(data, args.latent, args.epochs, args.seed, report,
                                      out_dir=staged.staging, **options)  # fmt: skip
        metrics = json_ready({key: result[key] for key in ("ae", "vae", "bae")})
        write_json(staged.staging / "config.json", json_ready(config))
        write_json(staged.staging / "metrics.json", metrics)
        extra = {key: result[key] for key in ("ambiguous", "ambiguity_summary", "classifier")}
        write_json(staged.staging / "ambiguous.json", json_ready(extra))
        report.write(staged.staging)
    for key in ("ae", "vae", "bae"):
        m = metrics[key]
        print(f"{key:>3}: knn {m['knn_accuracy']:.3f}  silhouette {m['silhouette']:.3f}  "
              f"recon NLL {m['test_recon_nll']:.2f}  blend mean/max {m['blend_mean_change']:.4f}/"
              f"{m['blend_max_change']:.4f}")
    print(f"report: {out / 'report.html'}")
    return 0
