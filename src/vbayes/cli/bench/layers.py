"""``vbayes bench layers``: time of one training step of Bayesian nets vs ``nn.Linear`` / ``nn.Conv2d``.

One step = forward, KL, backward and an Adam update. Every variant of a table is built in this
process and timed interleaved (round robin, a few steps each), and the table reports the
median step time and its ratio to the deterministic baseline measured alongside it. IntelLabs'
``bayesian-torch`` is included when it can be imported (``pip install --no-deps bayesian-torch``).
After the table it prints the project's speed targets (:data:`TARGETS`, mlp at batch 128) as met or
missed with the gap, and the difference between the largest thread count and 1 thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vbayes.cli.commands._common import positive_int
from vbayes.layers import kl_divergence
from vbayes.layers.registry import layer_class
from vbayes.models.nets import mlp as build_mlp

DATASET_SIZE = 60_000  # the KL is scaled by 1 / N as in an ELBO on MNIST

TARGETS = {"vbayes reparam": 1.5, "vbayes lrt": 1.8, "vbayes flipout": 2.0}
"""The project's speed targets: step time of the 784-400-400-10 MLP at batch 128 on 1 thread, as a multiple
of the same net with ``nn.Linear``."""
TARGET_BATCH = 128
THREAD_SLACK = 0.3
"""On more threads the ratio may be at most this much above the 1-thread ratio."""

OPTIMIZERS = {"adam": {}, "adam-foreach": {"foreach": True}, "adam-fused": {"fused": True}}
"""``--optimizer`` choices: keyword arguments of ``torch.optim.Adam(lr=1e-3)``, the same for every net of a
table. "adam" is PyTorch's default, which on CPU loops over the parameter tensors one at a time."""


def _vbayes_layer(kind: str, op: type[nn.Module]) -> type[nn.Module]:
    """The vbayes layer of ``kind`` ("vbayes reparam" / "vbayes flipout" / "vbayes lrt") for ``op``."""
    return layer_class(kind.split()[-1], op)


def _bayesian_torch() -> tuple[object | None, str]:
    try:
        import bayesian_torch.layers as bl  # type: ignore[import-not-found]
    except Exception as err:  # noqa: BLE001 - any import failure means "not available"
        return None, f"{type(err).__name__}: {err}".splitlines()[0]
    return bl, ""


class _BTNet(nn.Module):
    """A stack of bayesian-torch layers (they return ``(out, kl)``) with ReLU in between."""

    def __init__(self, layers: list[nn.Module], head: Callable[[Tensor], Tensor] | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.head = head
        self.kl: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        kl = 0.0
        for i, layer in enumerate(self.layers):
            if not _is_bt(layer):  # e.g. nn.Flatten
                x = layer(x)
                continue
            x, k = layer(x)
            kl = kl + k
            if i < len(self.layers) - 1 and _is_bt(layer):
                x = torch.relu(x)
                if x.dim() == 4:
                    x = F.max_pool2d(x, 2)
        self.kl = kl  # type: ignore[assignment]
        return x


def _is_bt(module: nn.Module) -> bool:
    return type(module).__module__.startswith("bayesian_torch")


def mlp(kind: str, bl: object | None) -> nn.Module:
    """784-400-400-10 classifier for ``kind`` ("nn.Linear", "vbayes <est>", "bayesian-torch <est>")."""
    sizes = [(784, 400), (400, 400), (400, 10)]
    if kind == "nn.Linear":
        return build_mlp(784, (400, 400), 10)
    if kind.startswith("vbayes"):
        return build_mlp(784, (400, 400), 10, linear=_vbayes_layer(kind, nn.Linear))
    cls = bl.LinearReparameterization if kind.endswith("reparam") else bl.LinearFlipout  # type: ignore[union-attr]
    return _BTNet([cls(i, o) for i, o in sizes])


def convnet(kind: str, bl: object | None) -> nn.Module:
    """conv(1->16, 3x3) - pool - conv(16->32, 3x3) - pool - linear(32*7*7 -> 10) on 28x28 inputs."""
    if kind == "nn.Linear":
        conv, lin = nn.Conv2d, nn.Linear
    elif kind.startswith("vbayes"):
        conv, lin = _vbayes_layer(kind, nn.Conv2d), _vbayes_layer(kind, nn.Linear)
    else:
        reparam = kind.endswith("reparam")
        c = bl.Conv2dReparameterization if reparam else bl.Conv2dFlipout  # type: ignore[union-attr]
        li = bl.LinearReparameterization if reparam else bl.LinearFlipout  # type: ignore[union-attr]
        return _BTNet([c(1, 16, 3, padding=1), c(16, 32, 3, padding=1), nn.Flatten(), li(32 * 7 * 7, 10)])
    return nn.Sequential(conv(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         conv(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), lin(32 * 7 * 7, 10))


def make_step(model: nn.Module, x: Tensor, y: Tensor, optimizer: str = "adam") -> Callable[[], None]:
    """A closure doing one ELBO training step (cross-entropy + KL / N, Adam as :data:`OPTIMIZERS` ``[optimizer]``)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **OPTIMIZERS[optimizer])

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = F.cross_entropy(out, y)
        if isinstance(model, _BTNet):
            loss = loss + model.kl / DATASET_SIZE  # type: ignore[operator]
        else:
            kl = kl_divergence(model)
            if kl.requires_grad:
                loss = loss + kl / DATASET_SIZE
        loss.backward()
        opt.step()

    return step


def time_interleaved(steps: dict[str, Callable[[], None]], rounds: int, per_round: int) -> dict[str, float]:
    """Median seconds per call of each closure, timed round robin (warm-up round excluded)."""
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(rounds + 1):
        for name, fn in steps.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                if r:
                    times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def run_table(net: str, batch: int, threads: int, kinds: list[str], bl: object | None,
              rounds: int, per_round: int, optimizer: str = "adam") -> dict[str, float]:
    """Median step seconds of every kind for one (network, batch, threads) setting, all with ``optimizer``."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    shape = (batch, 784) if net == "mlp" else (batch, 1, 28, 28)
    x = torch.rand(shape, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    build = mlp if net == "mlp" else convnet
    steps = {k: make_step(build(k, bl), x, y, optimizer) for k in kinds}
    return time_interleaved(steps, rounds, per_round)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("layers", help="step time of Bayesian layers vs nn.Linear / nn.Conv2d")
    parser.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[128, 512])
    parser.add_argument("--rounds", type=positive_int, default=20, help="round-robin rounds (default 20)")
    parser.add_argument("--per-round", type=positive_int, default=2,
                        help="steps per variant per round (default 2)")
    parser.add_argument("--no-conv", action="store_true", help="skip the conv-net table")
    parser.add_argument("--no-bayesian-torch", action="store_true", help="leave bayesian-torch out")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="the thread count measured besides 1 (default: the CPUs this process may use)")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam",
                        help="the optimiser of every net, baseline included (default adam: torch.optim.Adam's "
                             "CPU default, a loop over the parameter tensors)")
    parser.set_defaults(func=run)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run(args: argparse.Namespace) -> int:
    bl, why = (None, "left out (--no-bayesian-torch)") if args.no_bayesian_torch else _bayesian_torch()
    kinds = ["nn.Linear", "vbayes reparam", "vbayes lrt", "vbayes flipout"]
    if bl is not None:
        kinds += ["bayesian-torch reparam", "bayesian-torch flipout"]
    all_threads = torch.get_num_threads()  # restored at the end
    most = args.threads if args.threads is not None else available_cpus()
    thread_counts = sorted({1, most})
    settings = [("mlp", b, t) for b in args.batch_sizes for t in thread_counts]
    if not args.no_conv:
        settings += [("conv", 128, t) for t in thread_counts]
    print(f"torch {torch.__version__}, {available_cpus()} CPUs available, threads measured: "
          f"{', '.join(map(str, thread_counts))}; "
          f"bayesian-torch: {'included' if bl is not None else why if args.no_bayesian_torch else 'not importable (' + why + ')'}")
    opt_text = ", ".join(["lr=1e-3"] + [f"{k}={v}" for k, v in OPTIMIZERS[args.optimizer].items()])
    print(f"step = forward + KL + backward + torch.optim.Adam({opt_text}) (--optimizer {args.optimizer}, the same "
          "for every net); median of interleaved steps; ratio to the deterministic net\n")
    header = f"{'net':<5} {'batch':>5} {'thr':>3}  " + "  ".join(f"{k:>22}" for k in kinds)
    print(header)
    print("-" * len(header))
    ratios: dict[tuple[str, int, int], dict[str, float]] = {}
    try:
        for net, batch, threads in settings:
            med = run_table(net, batch, threads, kinds, bl, args.rounds, args.per_round, args.optimizer)
            base = med["nn.Linear"]
            ratios[(net, batch, threads)] = {k: med[k] / base for k in kinds}
            cells = [f"{med[k] * 1e3:8.2f} ms ({med[k] / base:4.2f}x)" for k in kinds]
            print(f"{net:<5} {batch:>5} {threads:>3}  " + "  ".join(f"{c:>22}" for c in cells), flush=True)
    finally:
        torch.set_num_threads(all_threads)
    print("\nnn.Linear column: the deterministic baseline (nn.Linear / nn.Conv2d), ratio 1.00x by definition.")
    print()
    for line in target_report(ratios, most):
        print(line)
    return 0


def target_report(ratios: dict[tuple[str, int, int], dict[str, float]], threads: int) -> list[str]:
    """Lines saying, for each of :data:`TARGETS`, whether the mlp at batch 128 met it (and by how much).

    ``ratios[(net, batch, threads)][kind]`` is a measured ratio to ``nn.Linear``; ``threads`` the
    largest thread count measured, compared with 1 thread against :data:`THREAD_SLACK`.
    """
    one = ratios.get(("mlp", TARGET_BATCH, 1))
    if one is None:
        return [f"targets: not checked (they are for the mlp at batch {TARGET_BATCH}; pass --batch-sizes {TARGET_BATCH})"]
    lines = [f"targets (mlp, batch {TARGET_BATCH}, 1 thread; ratio to nn.Linear):"]
    for kind, target in TARGETS.items():
        r = one[kind]
        verdict = "met" if r <= target else f"missed by {r - target:.2f}x"
        lines.append(f"  {kind.split()[-1]:<8} {r:4.2f}x <= {target:.1f}x: {verdict}")
    many = ratios.get(("mlp", TARGET_BATCH, threads)) if threads > 1 else None
    if many is None:
        lines.append(f"  only {threads} thread measured (--threads): the +{THREAD_SLACK}x thread target was not checked")
        return lines
    lines.append(f"{threads} threads vs 1 thread (target: at most +{THREAD_SLACK:.1f}x):")
    for kind in TARGETS:
        d = many[kind] - one[kind]
        verdict = "met" if d <= THREAD_SLACK else f"missed by {d - THREAD_SLACK:.2f}x"
        lines.append(f"  {kind.split()[-1]:<8} {many[kind]:4.2f}x - {one[kind]:4.2f}x = {d:+.2f}x <= +{THREAD_SLACK:.1f}x: "
                     f"{verdict}")
    return lines
