"""``vbayes vae``: train a VAE on image data and write a run directory with a report.

Also holds the option parsing and run logic that ``vbayes ae`` shares.
"""

from __future__ import annotations

import argparse
import os
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vbayes.cli.commands._common import (
    add_run_args,
    check_fits,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    prepare_out,
    resolve_device,
)
from vbayes.errors import VBayesError



def add_autoencoder_args(parser: argparse.ArgumentParser, model: str) -> None:
    """The options of ``vbayes vae`` (``model="vae"``) or ``vbayes ae`` (no KL options)."""
    parser.add_argument("--data", default="mnist5k", help="data set: mnist5k, digits, mnist, fashion-mnist (default mnist5k)")
    parser.add_argument("--arch", default="mlp", choices=("mlp", "conv"), help="encoder/decoder networks (default mlp)")
    parser.add_argument("--likelihood", default="bernoulli", choices=("bernoulli", "gaussian"),
                        help="decoder likelihood (default bernoulli, on dynamically binarised pixels)")
    parser.add_argument("--gaussian-std", type=positive_float, default=None,
                        help="fixed standard deviation of the gaussian likelihood (default: learned)")
    parser.add_argument("--latent", type=positive_int, default=2, help="latent size (default 2)")
    parser.add_argument("--hidden", type=positive_int, default=400, help="hidden width (default 400)")
    parser.add_argument("--epochs", type=positive_int, default=30, help="training epochs (default 30)")
    parser.add_argument("--batch-size", type=positive_int, default=100, help="mini-batch size (default 100)")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate (default 1e-3)")
    if model == "vae":
        parser.add_argument("--beta", type=nonneg_float, default=1.0, help="weight of the KL term (default 1)")
        parser.add_argument("--warmup", type=nonneg_int, default=0,
                            help="epochs of linear KL warm-up from 0 to beta (default 0)")
        parser.add_argument("--iw-samples", type=positive_int, default=500,
                            help="importance samples K for the test log-likelihood (default 500)")
    parser.add_argument("--early-stopping", type=positive_int, default=None, metavar="PATIENCE",
                        help="stop after this many epochs without a better validation loss")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is fastest on a busy shared CPU)")
    add_run_args(parser, default_out=f"runs/{model}", resumable=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("vae", help="train a variational auto-encoder on images",
                                   description="Train a VAE; write config.json, metrics.json, checkpoint.pt, "
                                               "log.csv, figures/ and report.html into --out.")
    add_autoencoder_args(parser, "vae")
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace, model: str) -> Any:
    """:class:`~vbayes.studies.autoencoders.vae_run.AutoencoderOptions` from parsed arguments (checked)."""
    from vbayes.studies.autoencoders.vae_run import AutoencoderOptions

    options = AutoencoderOptions(
        model=model, arch=args.arch, likelihood=args.likelihood, gaussian_std=args.gaussian_std,
        latent=args.latent, hidden=args.hidden, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        beta=getattr(args, "beta", 1.0), warmup=getattr(args, "warmup", 0),
        iw_samples=getattr(args, "iw_samples", 500), seed=args.seed, device=args.device,
        early_stopping=args.early_stopping, progress=not args.no_progress,
    )  # fmt: skip
    options.check()
    return options


def repeat_command(args: argparse.Namespace, model: str, options: Any) -> str:
    """The command line that repeats this run (every option spelled out)."""
    parts = ["vbayes", model, "--data", args.data, "--arch", options.arch, "--likelihood", options.likelihood,
             "--latent", str(options.latent), "--hidden", str(options.hidden), "--epochs", str(options.epochs),
             "--batch-size", str(options.batch_size), "--lr", repr(options.lr), "--seed", str(options.seed),
             "--device", options.device, "--out", str(args.out)]
    if options.gaussian_std is not None:
        parts += ["--gaussian-std", repr(options.gaussian_std)]
    if model == "vae":
        parts += ["--beta", repr(options.beta), "--warmup", str(options.warmup), "--iw-samples", str(options.iw_samples)]
    if options.early_stopping is not None:
        parts += ["--early-stopping", str(options.early_stopping)]
    if args.data_dir is not None:
        parts += ["--data-dir", os.path.abspath(args.data_dir)]  # resumable from any folder
    if args.threads is not None:
        parts += ["--threads", str(args.threads)]
    if args.no_progress:
        parts.append("--no-progress")
    return shlex.join(parts)


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
        "command": repeat_command(args, model, options),
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


def run(args: argparse.Namespace) -> int:
    """``vbayes vae``."""
    return run_autoencoder(args, "vae")
