"""``vbayes ae``: train the deterministic auto-encoder (same networks as ``vbayes vae``)."""

from __future__ import annotations

import argparse

from vbayes.cli.commands.vae import register_autoencoder


def register(subparsers: argparse._SubParsersAction) -> None:
    register_autoencoder(subparsers, "ae", "train a deterministic auto-encoder on images",
                         "an AE (reconstruction loss only)")
