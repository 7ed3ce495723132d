"""HMC speed: vbayes' batched HMC vs NumPyro's NUTS on the same 1-50-1 network, in one process.

Model (identical on both sides): the cubic toy of Hernández-Lobato & Adams (2015), 20 points,
inputs and targets standardised; a 1-H-1 ReLU network with weights N(0, 1 / fan_in), biases
N(0, 1), and noise precision tau ~ Gamma(1, 0.01), sampled as log tau. Both run ``--chains``
chains with ``--warmup`` warm-up and ``--samples`` kept iterations (NumPyro: chains vectorised).

Both are judged by the same yardstick: minimum bulk ESS (vbayes.methods.diagnostics) over the
function-space quantities (network output at the 20 training inputs, plus log tau), divided by
the total wall time (warm-up + sampling; for NumPyro also JIT compilation, reported apart).
Run: ``.venv/bin/python benchmarks/hmc_vs_numpyro.py``. Without ``numpyro`` installed (it is not
a dependency) only the vbayes side runs.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from vbayes.data.toy import cubic_standardised
from vbayes.methods import get_method
from vbayes.methods.diagnostics import summarize


def run_vbayes(x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> dict:
    m = get_method("hmc", hidden=(args.width,), seed=args.seed, num_chains=args.chains, num_warmup=args.warmup,
                   num_samples=args.samples, n_leapfrog=args.n_leapfrog)
    t0 = time.perf_counter()
    m.fit(x, y)
    seconds = time.perf_counter() - t0
    i = m.info
    return {"sampler": f"vbayes HMC (L<={args.n_leapfrog}, batched chains)", "seconds": seconds,
            "rhat_max": i["rhat_max"], "ess_min": i["ess_min"], "ess_per_second": i["ess_min"] / seconds,
            "divergences": i["divergences"], "grad_evals_per_chain": i["grad_evals"]}


def _numpyro_diag(mcmc: object) -> dict:
    s = mcmc.get_samples(group_by_chain=True)  # type: ignore[attr-defined]
    q = np.concatenate([np.asarray(s["f"]), np.log(np.asarray(s["tau"]))[..., None]], axis=-1)
    return summarize(q.astype(np.float64))


def run_numpyro(x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> dict:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    h = args.width
    xj, yj = jnp.asarray(x.numpy()), jnp.asarray(y.numpy())

    def model(xv: jnp.ndarray, yv: jnp.ndarray) -> None:
        w1 = numpyro.sample("w1", dist.Normal(0.0, 1.0).expand([1, h]).to_event(2))
        b1 = numpyro.sample("b1", dist.Normal(0.0, 1.0).expand([h]).to_event(1))
        w2 = numpyro.sample("w2", dist.Normal(0.0, 1.0 / math.sqrt(h)).expand([h, 1]).to_event(2))
        b2 = numpyro.sample("b2", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
        tau = numpyro.sample("tau", dist.Gamma(1.0, 0.01))
        f = (jax.nn.relu(xv @ w1 + b1) @ w2 + b2)[:, 0]
        numpyro.deterministic("f", f)
        numpyro.sample("y", dist.Normal(f, 1.0 / jnp.sqrt(tau)), obs=yv)

    mcmc = MCMC(NUTS(model, target_accept_prob=0.8), num_warmup=args.warmup, num_samples=args.samples,
                num_chains=args.chains, chain_method="vectorized", progress_bar=False)
    key = jax.random.split(jax.random.PRNGKey(args.seed), args.chains)
    t0 = time.perf_counter()
    mcmc.run(key, xj, yj, extra_fields=("diverging", "num_steps"))
    jax.block_until_ready(mcmc.get_samples()["f"])
    seconds = time.perf_counter() - t0
    diag = _numpyro_diag(mcmc)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    # a second run of the compiled sampler separates JIT compilation from sampling
    t1 = time.perf_counter()
    mcmc.run(jax.random.split(jax.random.PRNGKey(args.seed + 1), args.chains), xj, yj,
             extra_fields=("diverging", "num_steps"))
    jax.block_until_ready(mcmc.get_samples()["f"])
    rerun = time.perf_counter() - t1
    diag2 = _numpyro_diag(mcmc)
    return {"sampler": "NumPyro NUTS (vectorized chains)", "seconds": seconds, "seconds_second_run": rerun,
            "rhat_max": diag["rhat_max"], "ess_min": diag["ess_min"],
            "ess_per_second": diag["ess_min"] / seconds, "ess_per_second_second_run": diag2["ess_min"] / rerun,
            "divergences": int(np.asarray(extra["diverging"]).sum()),
            "mean_leapfrog_per_iteration": float(np.asarray(extra["num_steps"]).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=50)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--n-leapfrog", type=int, default=64,
                        help="64: the best ESS per gradient of 32/64/128 on this model (method default: 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny matrices: extra threads only add synchronisation
    x, y = cubic_standardised(args.seed)
    print(f"1-{args.width}-1 network on the cubic toy, {args.chains} chains x ({args.warmup} warm-up + {args.samples})")

    def show(r: dict) -> None:
        print(f"{r['sampler']:40s} time {r['seconds']:7.1f}s  rhat_max {r['rhat_max']:.3f}  ess_min {r['ess_min']:7.1f}"
              f"  ESS/s {r['ess_per_second']:7.2f}  divergences {r['divergences']}", flush=True)

    rows = [run_vbayes(x, y, args)]
    show(rows[0])
    try:
        import numpyro  # noqa: F401
    except ImportError:
        print("numpyro is not installed: only the vbayes side runs (pip install numpyro jax to compare)")
    else:
        rows.append(run_numpyro(x, y, args))
        show(rows[1])
        print(f"numpyro second run (compiled): time {rows[1]['seconds_second_run']:.1f}s  "
              f"ESS/s {rows[1]['ess_per_second_second_run']:.2f}; mean leapfrog steps per iteration "
              f"{rows[1]['mean_leapfrog_per_iteration']:.1f}")
    if len(rows) == 2:
        print(f"ratio vbayes / numpyro ESS/s: {rows[0]['ess_per_second'] / rows[1]['ess_per_second']:.2f} "
              f"(vs numpyro without JIT compile: "
              f"{rows[0]['ess_per_second'] / rows[1]['ess_per_second_second_run']:.2f})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
