"""``vbayes bench gradvar``: variance of the mini-batch ELBO gradient w.r.t. mu, per estimator.

The experiment of Kingma et al. (2015, Table 1) and Wen et al. (2018, Fig. 1). An MLP is fitted
briefly on mnist5k (so that sigma has grown to a realistic size); its posterior (mu, rho) is
then copied into a Reparam, a Flipout and an LRT network, and for every batch size B the
gradient of the negative ELBO (mean NLL + KL / N) with respect to every weight mean is drawn
``--draws`` times. Two variances are reported, averaged over the weights (units: squared
nats per example per weight):

* ``noise``: the variance over posterior noise for a given mini-batch, averaged over
  mini-batches -- the estimator's own variance. Flipout and LRT perturb examples
  independently, so it falls ~1/B; Reparam's single shared weight sample makes it plateau.
* ``total``: over a random mini-batch and noise together, what SGD actually sees.

Writes ``gradvar.json`` (variances, log-log slopes) and ``gradvar.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import io
import math
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vbayes.cli.commands._common import add_run_args, positive_int, prepare_out, resolve_device
from vbayes.errors import TrainingDiverged
from vbayes.files import atomic_write_bytes, write_json
from vbayes.layers import DEFAULT_POSTERIOR_STD, LinearLRT, VariationalLayer, kl_divergence
from vbayes.layers.registry import ESTIMATORS as REGISTERED
from vbayes.layers.registry import layer_class
from vbayes.methods.base import train_loop
from vbayes.models.nets import mlp

ESTIMATORS: dict[str, type] = {name: layer_class(name) for name in REGISTERED}


FIT_STD_INIT = 0.05  # softplus(-3), the usual initial sigma of bayesian-torch


def bayesian_mlp(cls: type, sizes: list[int], std_init: float = DEFAULT_POSTERIOR_STD) -> nn.Sequential:
    """``sizes[0] -> ... -> sizes[-1]`` MLP of Bayesian layers ``cls`` with ReLU in between."""
    return mlp(sizes[0], sizes[1:-1], sizes[-1], linear=functools.partial(cls, posterior_std_init=std_init))


def gradient_variance(model: nn.Module, x: Tensor, y: Tensor, batch_size: int, n_draws: int,
                      generator: torch.Generator) -> tuple[float, float]:
    """``(noise, total)`` variance of d(-ELBO per example)/d(mu), averaged over weight means.

    ``x`` ``(N, D)`` and ``y`` ``(N,)`` are the training set (N enters the KL scaling). Each of
    ``n_draws`` draws takes a random mini-batch of ``batch_size`` examples (without replacement)
    and computes the gradient twice with independent posterior noise, g1 and g2.

    * noise = mean over draws of (g1 - g2)^2 / 2: an unbiased estimate of E_batch[Var_eps(g)];
    * total = sample variance of g1 over draws: Var_{batch, eps}(g) (Welford's algorithm).
    """
    n = x.shape[0]
    mus = [m.weight_mu for m in model.modules() if isinstance(m, VariationalLayer)]
    mean = [torch.zeros_like(p) for p in mus]
    m2 = [torch.zeros_like(p) for p in mus]
    noise = 0.0

    def grad(idx: Tensor) -> tuple[Tensor, ...]:
        loss = F.cross_entropy(model(x[idx]), y[idx]) + kl_divergence(model) / n
        return torch.autograd.grad(loss, mus)

    for k in range(n_draws):
        idx = torch.randperm(n, generator=generator)[:batch_size]
        g1, g2 = grad(idx), grad(idx)
        noise += sum(float((a - b).square().sum()) for a, b in zip(g1, g2)) / 2
        for g, mu_k, m2_k in zip(g1, mean, m2):
            delta = g - mu_k
            mu_k.add_(delta, alpha=1.0 / (k + 1))
            m2_k.addcmul_(delta, g - mu_k)
    n_weights = sum(p.numel() for p in mus)
    total = sum(float(v.sum()) for v in m2) / (n_draws - 1)
    return noise / n_draws / n_weights, total / n_weights


def fit_posterior(sizes: list[int], x: Tensor, y: Tensor, epochs: int, batch_size: int,
                  generator: torch.Generator) -> dict[str, Tensor]:
    """Train an LRT MLP for ``epochs`` passes (Adam, lr 1e-3, ELBO; :func:`vbayes.methods.base.train_loop`)
    and return its state_dict.

    sigma starts at ``FIT_STD_INIT`` so that a short fit ends at a realistic posterior width.
    """
    model = bayesian_mlp(LinearLRT, sizes, FIT_STD_INIT).to(x.device)
    for m in model.modules():
        if isinstance(m, VariationalLayer):
            m.generator = generator if x.device.type == "cpu" else None
    n = x.shape[0]

    def loss_fn(xb: Tensor, yb: Tensor, step: int) -> Tensor:
        return F.cross_entropy(model(xb), yb) + kl_divergence(model) / n

    info: dict[str, Any] = {}
    if not train_loop(model.parameters(), loss_fn, x, y, steps=epochs * math.ceil(n / batch_size),
                      batch_size=batch_size, lr=1e-3, info=info, generator=generator, modules=[model]):  # fmt: skip
        raise TrainingDiverged(f"bench gradvar: fitting the posterior: {info['error']}")
    return model.state_dict()


def loglog_slope(batch_sizes: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) on log(batch size)."""
    lx = [math.log(b) for b in batch_sizes]
    ly = [math.log(v) for v in values]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def _log(msg: str) -> None:
    print(msg, flush=True)


def run_experiment(x: Tensor, y: Tensor, sizes: list[int], batch_sizes: list[int], n_draws: int,
                   epochs: int, seed: int, log: Callable[[str], None] = _log) -> dict:
    """Fit, then measure both variances for every estimator and batch size; returns the JSON dict."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    state = fit_posterior(sizes, x, y, epochs, 128, gen)
    stds = torch.cat([F.softplus(v).flatten() for k, v in state.items() if k.endswith("weight_rho")])
    log(f"fitted LRT posterior for {epochs} epochs in {time.perf_counter() - t0:.1f} s; "
        f"median weight sigma {stds.median().item():.4f}")
    out: dict = {"batch_sizes": batch_sizes, "noise": {}, "total": {}, "slope": {}, "slope_b_ge_64": {}}
    large = [i for i, b in enumerate(batch_sizes) if b >= 64]
    for name, cls in ESTIMATORS.items():
        model = bayesian_mlp(cls, sizes).to(x.device)
        model.load_state_dict(state)
        pairs = [gradient_variance(model, x, y, b, n_draws, gen) for b in batch_sizes]
        for i, kind in enumerate(("noise", "total")):
            values = [p[i] for p in pairs]
            out[kind][name] = values
            out["slope"][f"{kind}/{name}"] = loglog_slope(batch_sizes, values)
            if len(large) >= 2:
                out["slope_b_ge_64"][f"{kind}/{name}"] = loglog_slope(
                    [batch_sizes[i] for i in large], [values[i] for i in large])
        log(f"{name:8s} noise-only slope {out['slope'][f'noise/{name}']:+.2f}, "
            f"total slope {out['slope'][f'total/{name}']:+.2f}  ({time.perf_counter() - t0:.0f} s)")
    out["median_weight_sigma"] = stds.median().item()
    return out


def plot(result: dict) -> bytes:
    """Log-log PNG of both variances against the batch size, with a 1/B guide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bs = result["batch_sizes"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    titles = {"noise": "posterior noise only (E_batch Var_eps)", "total": "random mini-batch + noise"}
    for ax, kind in zip(axes, ("noise", "total")):
        for name, values in result[kind].items():
            ax.loglog(bs, values, "o-", label=f"{name} (slope {result['slope'][f'{kind}/{name}']:+.2f})")
        first = max(v[0] for v in result[kind].values())
        ax.loglog(bs, [first / b for b in bs], "k--", lw=1, label="1 / B")
        ax.set_xlabel("batch size B")
        ax.set_ylabel("mean Var[dL/dmu] per weight")
        ax.set_title(titles[kind], fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gradvar", help="variance of the ELBO gradient vs batch size per estimator")
    add_run_args(parser, "runs/bench-gradvar")
    parser.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[1, 4, 16, 64, 256, 512])
    parser.add_argument("--draws", type=positive_int, default=24,
                        help="mini-batches per point, two gradients each (default 24)")
    parser.add_argument("--epochs", type=positive_int, default=3, help="epochs fitting the posterior (default 3)")
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=[400, 400],
                        help="hidden layer widths (default 400 400)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch intra-op threads (default 1: many small steps gain little from more)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbayes import data
    from vbayes.errors import VBayesError

    if args.draws < 2:
        raise VBayesError("--draws must be at least 2 to estimate a variance")
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    out = prepare_out(args.out, args.overwrite)
    kw = {"data_dir": args.data_dir} if args.data_dir else {}
    ds = data.load("mnist5k", **kw)
    x = ds.x_train.flatten(1).to(device)
    y = ds.y_train.to(device)
    if max(args.batch_sizes) > x.shape[0]:
        raise VBayesError(f"--batch-sizes: at most {x.shape[0]} (the training set size)")
    sizes = [x.shape[1], *args.hidden, ds.n_classes]
    print(f"mnist5k: {x.shape[0]} training images; MLP {'-'.join(map(str, sizes))}; "
          f"{args.draws} draws per point", flush=True)
    result = run_experiment(x, y, sizes, sorted(args.batch_sizes), args.draws, args.epochs, args.seed)
    result.update(dataset="mnist5k", n_train=int(x.shape[0]), sizes=sizes, draws=args.draws,
                  epochs=args.epochs, seed=args.seed)
    write_json(out / "config.json", {k: v for k, v in vars(args).items() if k != "func"})
    write_json(out / "gradvar.json", result)
    atomic_write_bytes(out / "gradvar.png", plot(result))
    print(f"{'B':>5} " + " ".join(f"{k + '/' + n:>16}" for k in ("noise", "total") for n in ESTIMATORS))
    for i, b in enumerate(result["batch_sizes"]):
        print(f"{b:>5} " + " ".join(f"{result[k][n][i]:16.3e}" for k in ("noise", "total") for n in ESTIMATORS))
    if result["slope_b_ge_64"]:
        print("log-log slope for B >= 64 (-1: variance ~ 1/B; 0: plateau): " + ", ".join(
            f"{k} {v:+.2f}" for k, v in result["slope_b_ge_64"].items()))
    print(f"wrote {out / 'gradvar.json'} and {out / 'gradvar.png'}")
    return 0
