"""``vbayes bench ddp``: training throughput (samples/s) with 1 and with N data-parallel processes.

Trains the MLP VAE of ``vbayes vae`` (784-H-latent, Bernoulli likelihood, dynamic binarisation)
on mnist5k's 3,500 training images with the vbayes trainer, first in one process and then in
``--procs`` processes joined by ``torch.distributed`` (gloo on CPU, as ``torchrun`` would start
them), with the same GLOBAL batch size and ``--threads`` torch threads per process. It prints
the training samples per second of both (median epoch time, the first epoch left out as
warm-up), their ratio, and both final training losses (they agree statistically: the ranks
draw different noise). On a machine with fewer free cores than processes the ratio is < 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from vbayes.cli.commands._common import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ddp",
        help="training samples/s with 1 and N torch.distributed processes",
        description="Training throughput (samples/s) of the vbayes VAE on mnist5k in 1 process and in "
        "--procs data-parallel processes (gloo, as torchrun starts them), and their ratio.",
    )
    parser.add_argument("--procs", type=positive_int, default=2, help="processes of the parallel run (default 2)")
    parser.add_argument("--epochs", type=positive_int, default=4, help="epochs per run (default 4)")
    parser.add_argument("--batch-size", type=positive_int, default=128, help="global batch size (default 128)")
    parser.add_argument("--hidden", type=positive_int, default=400, help="hidden width (default 400)")
    parser.add_argument("--latent", type=positive_int, default=20, help="latent size (default 20)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads per process (default 1)")
    parser.set_defaults(func=run)


def _worker(out_file: str, epochs: int, batch_size: int, hidden: int, latent: int) -> None:
    """One rank: train the VAE and (rank 0) write its epoch times and losses to ``out_file``."""
    from vbayes.data import load
    from vbayes.train.distributed import is_main_process
    from vbayes.train import TrainConfig, Trainer, seed_everything
    from vbayes.studies.autoencoders.vae_run import AutoencoderOptions, build_model, vae_loss_fn

    data = load("mnist5k")
    options = AutoencoderOptions(hidden=hidden, latent=latent, epochs=epochs, batch_size=batch_size, progress=False)
    seed_everything(0)
    model = build_model(options, data.image_shape)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=options.lr, seed=0, progress=False)
    result = Trainer(model, vae_loss_fn(options), config).fit((data.x_train,))
    if is_main_process():
        record = {"seconds": [row["seconds"] for row in result.history],
                  "train_loss": [row["train_loss"] for row in result.history], "n": int(data.x_train.shape[0])}  # fmt: skip
        Path(out_file).write_text(json.dumps(record))


def measure(procs: int, epochs: int, batch_size: int, hidden: int, latent: int, threads: int) -> dict[str, float]:
    """Run :func:`_worker` in ``procs`` processes; samples/s, seconds/epoch and final loss of the run."""
    from vbayes.train.distributed import launch_local

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        launch_local(_worker, procs, args=(out, epochs, batch_size, hidden, latent), threads=threads)
        record = json.loads(Path(out).read_text())
    timed = record["seconds"][1:] or record["seconds"]
    seconds = statistics.median(timed)
    return {"samples_per_s": record["n"] / seconds, "seconds_per_epoch": seconds, "final_loss": record["train_loss"][-1]}


def run(args: argparse.Namespace) -> int:
    """``vbayes bench ddp``: print the table and the ratio."""
    runs = {}
    for procs in (1, args.procs):
        runs[procs] = measure(procs, args.epochs, args.batch_size, args.hidden, args.latent, args.threads)
        r = runs[procs]
        print(f"{procs} process{'es' if procs > 1 else '  '}: {r['samples_per_s']:8.0f} samples/s  "
              f"{r['seconds_per_epoch']:.3f} s/epoch  final train loss {r['final_loss']:.2f} nats", flush=True)  # fmt: skip
    ratio = runs[args.procs]["samples_per_s"] / runs[1]["samples_per_s"]
    print(f"throughput ratio {args.procs} vs 1 process: {ratio:.2f}x "
          f"(VAE 784-{args.hidden}-{args.latent}, global batch {args.batch_size}, {args.threads} thread(s)/process, "
          f"{os.cpu_count()} CPUs visible)")  # fmt: skip
    return 0
