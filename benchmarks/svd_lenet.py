"""Sparse variational dropout on LeNet-300-100 (Molchanov et al. 2017, Table 1) on ``mnist5k``.

Two 784-300-100-10 ReLU networks train in this process from the same initial weights (means),
with the same loop, epoch by epoch in turn: ``LinearSVD`` layers on the loss ``CE + w(epoch) KL / N`` and plain
``nn.Linear`` layers on ``CE`` (the dense baseline). The paper's schedule, stretched to
``--epochs`` (the paper's 200): Adam, batch 100, learning rate 1e-3 held for the first half and
then falling linearly to 0; the KL weight w is 0 for the first 5/200 of the epochs, then rises
linearly to 1 at 20/200. The sparse net is scored as the paper does: its pruned mean network
(weights with log alpha > 3 set to 0) on the test set; compression = weights / nonzero weights
(biases not counted).

``mnist5k`` is 5,000 real MNIST digits (3,500 train / 500 validation / 1,000 test; the
validation part is not used), not the paper's 60,000 / 10,000: with 17x fewer training points
the KL / N weighs 17x more, so neither the error nor the compression is directly comparable
with the paper's 1.92% and 68x.

    python benchmarks/svd_lenet.py --out runs/svd-lenet            # 200 epochs, ~2-4 min, 1 thread
    python benchmarks/svd_lenet.py --quick --out runs/svd-quick    # 2 epochs on 500 digits

Writes ``results.json`` and ``svd_lenet.pt`` (the sparse net's state dict) under ``--out`` and
nothing else; downloads nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import vbayes
from vbayes.layers import LinearSVD

PAPER = {"error_pct": 1.92, "compression": 68.0, "data": "MNIST, 60,000 training digits"}
SIZES = (784, 300, 100, 10)


def lenet(linear: type[nn.Module]) -> nn.Sequential:
    """LeNet-300-100 built from ``linear(in, out)``: images ``(B, 784)`` -> logits ``(B, 10)``."""
    return nn.Sequential(linear(784, 300), nn.ReLU(), linear(300, 100), nn.ReLU(), linear(100, 10))


def learning_rate(epoch: int, epochs: int, lr: float = 1e-3) -> float:
    """The paper's ``lr * min(2 - epoch / (epochs / 2), 1)``: held, then linear to 0."""
    return lr * max(0.0, min(2.0 - epoch / (epochs / 2), 1.0))


def kl_weight(epoch: int, epochs: int) -> float:
    """The paper's KL weight: 0 before epoch 5/200 of ``epochs``, linear to 1 at 20/200."""
    start, end = 5 * epochs / 200, 20 * epochs / 200
    return 0.0 if epoch < start else min(1.0, (epoch - start) / max(end - start, 1e-12))


def train(models: dict[str, nn.Module], x: Tensor, y: Tensor, epochs: int, batch: int, seed: int) -> dict[str, float]:
    """Adam on ``CE + w KL / N`` (the KL is 0 for a dense net) with the paper's schedules, the
    models trained epoch by epoch in turn (so a drifting load on a shared machine hits them
    alike), each with its own shuffling generator seeded alike; returns seconds per epoch."""
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    gens = {k: torch.Generator().manual_seed(seed) for k in models}
    seconds = dict.fromkeys(models, 0.0)
    n = x.shape[0]
    for epoch in range(epochs):
        w = kl_weight(epoch, epochs)
        for k, model in models.items():
            model.train()
            for group in opts[k].param_groups:
                group["lr"] = learning_rate(epoch, epochs)
            start = time.perf_counter()
            perm = torch.randperm(n, generator=gens[k])
            for i in range(0, n, batch):
                idx = perm[i:i + batch]
                loss = F.cross_entropy(model(x[idx]), y[idx]) + w * vbayes.kl_divergence(model) / n
                opts[k].zero_grad(set_to_none=True)
                loss.backward()
                opts[k].step()
            seconds[k] += time.perf_counter() - start
    return {k: t / epochs for k, t in seconds.items()}


@torch.no_grad()
def error_pct(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Test error (%) of ``model``; Bayesian layers use their (pruned) mean weights."""
    model.eval()
    with vbayes.sampling_mode(model, "mean"):
        return 100.0 * float((model(x).argmax(1) != y).float().mean())


def sparsity(model: nn.Module) -> dict[str, object]:
    """Weights, kept weights, compression and kept fraction per layer of a sparse net."""
    layers = [m for m in model.modules() if isinstance(m, LinearSVD)]
    total = sum(m.theta.numel() for m in layers)
    kept = sum(int(m.weight_mask.sum()) for m in layers)
    return {"weights": total, "kept": kept, "compression": total / kept if kept else math.inf,
            "kept_per_layer": [round(m.kept_fraction, 5) for m in layers]}


def run(epochs: int, n_train: int | None, seed: int, threads: int) -> tuple[dict[str, object], nn.Module]:
    """Train both nets on mnist5k and score them; returns the results and the sparse net."""
    torch.set_num_threads(threads)
    data = vbayes.data.load("mnist5k")
    x, y = data.x_train.flatten(1), data.y_train
    if n_train is not None:
        x, y = x[:n_train], y[:n_train]
    xt, yt = data.x_test.flatten(1), data.y_test
    torch.manual_seed(seed)
    sparse = lenet(LinearSVD)
    torch.manual_seed(seed)  # the same draws: nn.Linear initialises weight then bias as LinearSVD does theta
    dense = lenet(nn.Linear)
    per_epoch = train({"svd": sparse, "dense": dense}, x, y, epochs, 100, seed)
    unpruned = _unpruned_error(sparse, xt, yt)
    results = {
        "data": f"mnist5k: {x.shape[0]} training digits, {xt.shape[0]} test digits",
        "epochs": epochs, "batch_size": 100, "seed": seed, "threads": threads,
        "svd": {"error_pct": error_pct(sparse, xt, yt), "error_unpruned_pct": unpruned, **sparsity(sparse),
                "seconds_per_epoch": per_epoch["svd"]},
        "dense": {"error_pct": error_pct(dense, xt, yt), "weights": sum(m.weight.numel() for m in dense
                                                                         if isinstance(m, nn.Linear)),
                  "seconds_per_epoch": per_epoch["dense"]},
        "time_ratio": per_epoch["svd"] / per_epoch["dense"],
        "paper": PAPER,
    }
    return results, sparse


@torch.no_grad()
def _unpruned_error(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Test error (%) of the sparse net's mean weights without pruning."""
    layers = [m for m in model.modules() if isinstance(m, LinearSVD)]
    saved = [m.prune_threshold for m in layers]
    try:
        for m in layers:
            m.prune_threshold = math.inf
        return error_pct(model, x, y)
    finally:
        for m, t in zip(layers, saved):
            m.prune_threshold = t


def table(results: dict) -> str:
    """The figures as a Markdown table."""
    svd, dense, paper = results["svd"], results["dense"], results["paper"]
    return "\n".join([
        f"LeNet-300-100, {results['data']}, {results['epochs']} epochs",
        "| net | test error | compression (weights / nonzero) | s / epoch |",
        "|---|---|---|---|",
        f"| sparse VD, pruned at log alpha > 3 | {svd['error_pct']:.2f}% | {svd['compression']:.1f}x "
        f"({svd['kept']} of {svd['weights']} kept; per layer {svd['kept_per_layer']}) | {svd['seconds_per_epoch']:.2f} |",
        f"| sparse VD, unpruned means | {svd['error_unpruned_pct']:.2f}% | 1x | |",
        f"| dense nn.Linear, same loop | {dense['error_pct']:.2f}% | 1x | {dense['seconds_per_epoch']:.2f} |",
        f"| paper (Molchanov et al. 2017, {paper['data']}) | {paper['error_pct']:.2f}% | {paper['compression']:.0f}x | |",
        f"time per epoch, sparse VD / dense: {results['time_ratio']:.2f}x (epochs interleaved)",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for results.json and svd_lenet.pt")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 epochs on 500 training digits (a smoke test)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.threads < 1:
        parser.error("--epochs and --threads must be >= 1")
    epochs, n_train = (2, 500) if args.quick else (args.epochs, None)
    results, sparse = run(epochs, n_train, args.seed, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    torch.save(sparse.state_dict(), args.out / "svd_lenet.pt")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
