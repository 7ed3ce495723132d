"""``vbayes bench mcmc``: how HMC mixing degrades as the network grows, measured.

HMC (the ``hmc`` method: batched chains, windowed adaptation) on the cubic toy of
Hernández-Lobato & Adams (2015) (20 points, x in [-4, 4], y = x^3 + N(0, 3^2), inputs and
targets standardised) with one hidden layer of each width in ``--widths``. For every width it
reports the parameter count, R-hat (rank-normalised split, max over function-space quantities
and over raw weights), the minimum bulk ESS, effective samples per second (ESS over warm-up +
sampling wall time), divergences and time; it writes ``metrics.json`` and ``mixing.png`` (R-hat
and ESS/s against the parameter count) into ``--out``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import torch

from vbayes.cli.commands._common import nonneg_int, positive_int, prepare_out, seed_int, widths
from vbayes.data.toy import cubic_standardised
from vbayes.files import write_json

DEFAULT_WIDTHS = (2, 5, 10, 20, 50, 100, 200)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("mcmc", help="HMC mixing and ESS/s vs network width on the cubic toy")
    parser.add_argument("--widths", type=widths, default=DEFAULT_WIDTHS,
                        help=f"hidden widths, comma-separated (default {','.join(map(str, DEFAULT_WIDTHS))})")
    parser.add_argument("--chains", type=positive_int, default=4, help="chains (default 4)")
    parser.add_argument("--warmup", type=nonneg_int, default=500, help="warm-up iterations (default 500)")
    parser.add_argument("--samples", type=positive_int, default=500, help="kept iterations (default 500)")
    parser.add_argument("--n-leapfrog", type=positive_int, default=64,
                        help="max leapfrog steps (default 64: the best ESS per gradient of 32/64/128 "
                             "on the 1-50-1 cubic toy; the hmc method's own default is 128)")
    parser.add_argument("--out", default="runs/bench-mcmc", help="output directory (default runs/bench-mcmc)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing result in --out")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of data and chains (default 0)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch CPU threads (default 1: these matrices are tiny, and extra threads only "
                             "add synchronisation, badly so on a busy machine)")
    parser.set_defaults(func=run)


def bench_width(width: int, x: torch.Tensor, y: torch.Tensor, *, chains: int, warmup: int, samples: int,
                n_leapfrog: int, seed: int) -> dict[str, Any]:
    """Run HMC on a 1-``width``-1 network; returns the row of the table."""
    from vbayes.methods import get_method

    method = get_method("hmc", hidden=(width,), seed=seed, num_chains=chains, num_warmup=warmup,
                        num_samples=samples, n_leapfrog=n_leapfrog)
    t0 = time.perf_counter()
    method.fit(x, y)
    seconds = time.perf_counter() - t0
    info = method.info
    keys = ("n_params", "rhat_max", "rhat_max_params", "ess_min", "ess_min_params", "ess_per_second",
            "divergences", "step_size", "accept_rate", "grad_evals", "warmup_seconds", "sample_seconds")
    row = {"width": width, **{k: info.get(k) for k in keys}, "seconds": seconds}
    if "error" in info:
        row["error"] = info["error"]
    return row


def plot_mixing(rows: list[dict[str, Any]], path: Path) -> None:
    """R-hat and ESS/s against the parameter count (log x axis), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = [r["n_params"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(p, [r["rhat_max"] for r in rows], "o-", label="function space (f(x_i), log tau)")
    ax1.plot(p, [r["rhat_max_params"] for r in rows], "s--", label="raw weights")
    ax1.axhline(1.01, color="grey", lw=0.8, ls=":", label="1.01")
    ax1.set(xscale="log", xlabel="parameters", ylabel="max rank-normalised split R-hat",
            title="HMC mixing on the cubic toy")
    ax1.legend(fontsize=8)
    ax2.plot(p, [r["ess_per_second"] for r in rows], "o-")
    ax2.set(xscale="log", yscale="log", xlabel="parameters", ylabel="min bulk ESS / second",
            title="effective samples per second")
    for r in rows:
        ax2.annotate(f"h={r['width']}", (r["n_params"], r["ess_per_second"]), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    out = prepare_out(args.out, args.overwrite)
    torch.set_num_threads(args.threads)
    x, y = cubic_standardised(args.seed)
    rows = []
    header = f"{'width':>5} {'params':>6} {'rhat_f':>7} {'rhat_w':>7} {'ess_min':>8} {'ess/s':>8} {'div':>4} {'time_s':>7}"
    print(header)
    for width in args.widths:
        row = bench_width(width, x, y, chains=args.chains, warmup=args.warmup, samples=args.samples,
                          n_leapfrog=args.n_leapfrog, seed=args.seed)
        rows.append(row)
        print(f"{width:5d} {row['n_params']:6d} {row['rhat_max']:7.3f} {row['rhat_max_params']:7.2f} "
              f"{row['ess_min']:8.1f} {row['ess_per_second']:8.2f} {row['divergences']:4d} {row['seconds']:7.1f}",
              flush=True)
    result = {
        "benchmark": "mcmc",
        "data": "cubic toy (20 points, standardised)",
        "settings": {"chains": args.chains, "warmup": args.warmup, "samples": args.samples,
                     "n_leapfrog": args.n_leapfrog, "seed": args.seed,
                     "threads": args.threads},
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "rows": rows,
    }
    write_json(out / "metrics.json", result)
    plot_mixing(rows, out / "mixing.png")
    print(f"wrote {out / 'metrics.json'} and {out / 'mixing.png'}")
    return 0
