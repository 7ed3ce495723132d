"""``vbayes vae``: train a VAE on image data and write a run directory with a report.

Also holds the option parsing and run logic that ``vbayes ae`` shares.
"""

from __future__ import annotations

import argparse
import functools
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vbayes.cli.commands._common import (
    add_image_model_args,
    add_run_args,
    check_fits,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    prepare_out,
    resolve_device,
)
from vbayes.cli.config import repeat_command
from vbayes.errors import VBayesError



def add_autoencoder_args(parser: argparse.ArgumentParser, model: str) -> None:
    """The options of ``vbayes vae`` (``model="vae"``) or ``vbayes ae`` (no KL options); the defaults
    are those of :class:`~vbayes.studies.autoencoders.vae_run.AutoencoderOptions`."""
    from vbayes.studies.autoencoders.vae_run import AutoencoderOptions as D

    add_image_model_args(parser, D)
    parser.add_argument("--gaussian-std", type=positive_float, default=D.gaussian_std,
                        help="fixed standard deviation of the gaussian likelihood (default: learned)")
    parser.add_argument("--latent", type=positive_int, default=D.latent, help=f"latent size (default {D.latent})")
    if model == "vae":
        parser.add_argument("--beta", type=nonneg_float, default=D.beta, help=f"weight of the KL term (default {D.beta:g})")
        parser.add_argument("--warmup", type=nonneg_int, default=D.warmup,
                            help=f"epochs of linear KL warm-up from 0 to beta (default {D.warmup})")
        parser.add_argument("--iw-samples", type=positive_int, default=D.iw_samples,
                            help=f"importance samples K for the test log-likelihood (default {D.iw_samples})")
    parser.add_argument("--early-stopping", type=positive_int, default=D.early_stopping, metavar="PATIENCE",
                        help="stop after this many epochs without a better validation loss")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is fastest on a busy shared CPU)")
    add_run_args(parser, default_out=f"runs/{model}", resumable=True)


def register_autoencoder(subparsers: argparse._SubParsersAction, model: str, help: str, trains: str) -> None:
    """Add the parser of ``vbayes vae`` or ``vbayes ae`` (``model``), whose run is :func:`run_autoencoder`."""
    parser = subparsers.add_parser(model, help=help,
                                   description=f"Train {trains}; write config.json, metrics.json, checkpoint.pt, "
                                               "log.csv, figures/ and report.html into --out.")  # fmt: skip
    add_autoencoder_args(parser, model)
    parser.set_defaults(func=functools.partial(run_autoencoder, model=model))


def register(subparsers: argparse._SubParsersAction) -> None:
    register_autoencoder(subparsers, "vae", "train a variational auto-encoder on images", "a VAE")


def options_from_args(args: argparse.Namespace, model: str) -> Any:
    """:class:`~vbayes.studies.autoencoders.vae_run.AutoencoderOptions` from parsed arguments (checked)."""
    from vbayes.studies.autoencoders.vae_run import AutoencoderOptions

    kl_options = {k: getattr(args, k) for k in ("beta", "warmup", "iw_samples") if hasattr(args, k)}  # vae only
    options = AutoencoderOptions(
        model=model, arch=args.arch, likelihood=args.likelihood, gaussian_std=args.gaussian_std,
        latent=args.latent, hidden=args.hidden, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, device=args.device, early_stopping=args.early_stopping, progress=not args.no_progress,
        **kl_options,
    )  # fmt: skip
    options.check()
    return options


def run_autoencoder(args: argparse.Namespace, model: str) -> int:
    """Shared body of ``vbayes vae`` and ``vbayes ae``; returns the exit status."""
    import torch

    from vbayes import __version__
    from vbayes.data import ImageData, load
    from vbayes.files import write_json
    from vbayes.files import json_ready
    from vbayes.cli.runs import resumable_run
    from vbayes.studies.autoencoders.vae_report import write_autoencoder_report
    from vbayes.studies.autoencoders.vae_run import train_autoencoder

    options = options_from_args(args, model)
    resolve_device(options.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    data = load(args.data, data_dir=args.data_dir)
    if not isinstance(data, ImageData):
        raise VBayesError(f"--data {args.data} is not an image data set")
    check_fits(data.image_shape, options.hidden, options.latent, n_test=len(data.x_test),
               samples=options.iw_samples if model == "vae" else 1, samples_option="--iw-samples")
    config = {
        "command": repeat_command(args),
        "model": model,
        "data": args.data,
        "data_dir": os.path.abspath(args.data_dir) if args.data_dir is not None else None,
        "image_shape": list(data.image_shape),
        "options": asdict(options),
        "threads": torch.get_num_threads(),
        "versions": {"vbayes": __version__, "torch": torch.__version__},
    }
    existed = Path(args.out).exists()
    out = prepare_out(args.out, args.overwrite, resume=args.resume)
    with resumable_run(out, not existed, args.resume, args.overwrite) as staged:
        result = train_autoencoder(data, options, out_dir=staged.staging, run_config=config,
                                   resume=staged.resume_from or False, callbacks=[staged])  # fmt: skip
        metrics = json_ready(result.metrics)
        write_json(staged.staging / "config.json", json_ready(config))
        write_json(staged.staging / "metrics.json", metrics)
        write_autoencoder_report(result, staged.staging, config, f"{model.upper()} on {args.data}")
    headline = ("test_elbo", "test_nll", "test_recon_nll") if model == "vae" else ("test_recon_nll",)
    summary = ", ".join(f"{k} {metrics[k]:.2f}" for k in headline)
    print(f"{model}: {summary} nats/example; {metrics['epochs']} epochs, {metrics['seconds_per_epoch']:.2f} s/epoch")
    print(f"report: {out / 'report.html'}")
    return 0

