"""``vbayes bae``: train a Bayesian auto-encoder (weight posterior on the encoder) and report on it."""

from __future__ import annotations

import argparse
from pathlib import Path

from vbayes.cli.commands._common import (add_image_model_args, add_run_args, check_fits, positive_float, positive_int,
                                         prepare_out, resolve_device)
from vbayes.cli.config import repeat_command
from vbayes.errors import VBayesError
from vbayes.layers.registry import ESTIMATORS
from vbayes.models.bae import BAE_POSTERIOR_STD_INIT, DEFAULT_PRIOR_SCALE
from vbayes.studies.autoencoders.vae_run import AutoencoderOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bae", help="train a Bayesian auto-encoder (Flipout encoder) on images",
        description="Train an auto-encoder whose encoder weights have a variational posterior; write config.json, "
                    "metrics.json, checkpoint.pt, log.csv, figures/ and report.html into --out.",
    )  # fmt: skip
    add_image_model_args(parser, AutoencoderOptions)  # the networks and optimiser of vbayes vae / ae
    parser.add_argument("--latent", type=int, default=AutoencoderOptions.latent,
                        help=f"code size (default {AutoencoderOptions.latent})")
    parser.add_argument("--estimator", default="flipout", choices=ESTIMATORS,
                        help="how the Bayesian layers sample (default flipout)")
    parser.add_argument("--bayesian-decoder", action="store_true", help="also put a weight posterior on the decoder")
    parser.add_argument("--prior-scale", type=positive_float, default=DEFAULT_PRIOR_SCALE,
                        help=f"standard deviation of the N(0, s^2) weight prior (default {DEFAULT_PRIOR_SCALE})")
    parser.add_argument("--posterior-std", type=positive_float, default=BAE_POSTERIOR_STD_INIT,
                        help=f"initial posterior standard deviation of the Bayesian weights (default {BAE_POSTERIOR_STD_INIT})")
    parser.add_argument("--samples", type=int, default=100,
                        help="weight samples S per test input for the reconstruction distribution (default 100)")
    parser.add_argument("--early-stopping", type=positive_int, default=None, metavar="PATIENCE",
                        help="stop after this many epochs without a better validation loss")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_run_args(parser, default_out="runs/bae", resumable=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``vbayes bae``: returns the exit status (user errors raise :class:`VBayesError`)."""
    import torch

    from vbayes import __version__
    from vbayes.studies.autoencoders.bae_report import write_bae_report
    from vbayes.studies.autoencoders.compare import check_image_data
    from vbayes.studies.autoencoders.fit import bae_test_metrics, fit_bae
    from vbayes.data import load
    from vbayes.files import write_json
    from vbayes.models.bae import BayesianAE
    from vbayes.layers.priors import Normal
    from vbayes.files import json_ready
    from vbayes.cli.runs import resumable_run
    from vbayes.train import TrainConfig

    if args.latent < 1:
        raise VBayesError(f"--latent must be >= 1, got {args.latent}")
    if args.samples < 1:
        raise VBayesError(f"--samples must be >= 1, got {args.samples}")
    device = resolve_device(args.device)
    data = load(args.data, data_dir=args.data_dir)
    check_image_data(data, args.arch)
    check_fits(data.image_shape, args.hidden, args.latent, samples=args.samples, n_test=len(data.x_test))
    config = {
        "command": repeat_command(args),
        "model": "bae",
        "data": args.data,
        "image_shape": list(data.image_shape),
        "options": {k: v for k, v in vars(args).items() if k not in ("func", "command", "overwrite", "resume")},
        "versions": {"vbayes": __version__, "torch": torch.__version__},
    }
    torch.manual_seed(args.seed)
    model = BayesianAE(args.arch, data.image_shape, args.latent, args.hidden, estimator=args.estimator,
                       bayesian_decoder=args.bayesian_decoder, prior=Normal(0.0, args.prior_scale),
                       likelihood=args.likelihood, posterior_std_init=args.posterior_std)  # fmt: skip
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            device=str(device), early_stopping=args.early_stopping, progress=not args.no_progress)
    existed = Path(args.out).exists()
    out = prepare_out(args.out, args.overwrite, resume=args.resume)
    with resumable_run(out, not existed, args.resume, args.overwrite) as staged:
        result = fit_bae(model, data, train_cfg, out_dir=staged.staging, run_config=config,
                         resume=staged.resume_from or False, callbacks=[staged])  # fmt: skip
        model.eval()
        metrics = bae_test_metrics(model, data.x_test.to(device), len(data.x_train), n_samples=args.samples)
        metrics.update(epochs=result.epochs_run, best_epoch=result.best_epoch, stopped_early=result.stopped_early,
                       seconds_per_epoch=result.seconds_per_epoch, train_examples=len(data.x_train),
                       test_examples=len(data.x_test))  # fmt: skip
        metrics = json_ready(metrics)
        write_json(staged.staging / "config.json", json_ready(config))
        write_json(staged.staging / "metrics.json", metrics)
        write_bae_report(model, data, result.history, metrics, config, staged.staging, args.samples)
    print(f"bae: test_recon_nll {metrics['test_recon_nll']:.2f}, test_elbo {metrics['test_elbo']:.2f}, "
          f"kl_per_example {metrics['kl_per_example']:.2f} nats/example; mean predictive std "
          f"{metrics['mean_predictive_std']:.4f}; {metrics['epochs']} epochs, {metrics['seconds_per_epoch']:.2f} s/epoch")
    print(f"report: {out / 'report.html'}")
    return 0
