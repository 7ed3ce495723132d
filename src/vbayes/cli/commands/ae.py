"""``vbayes ae``: train the deterministic auto-encoder (same networks as ``vbayes vae``)."""

from __future__ import annotations

import argparse

from vbayes.cli.commands.vae import add_autoencoder_args, run_autoencoder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ae", help="train a deterministic auto-encoder on images",
                                   description="Train an AE (reconstruction loss only); write config.json, "
                                               "metrics.json, checkpoint.pt, log.csv, figures/ and report.html into --out.")
    add_autoencoder_args(parser, "ae")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``vbayes ae``."""
    return run_autoencoder(args, "ae")
