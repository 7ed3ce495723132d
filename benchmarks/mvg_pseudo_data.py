"""MVG with and without the learned pseudo-data (Louizos & Welling 2016), in one process.

For every data set the ``mvg`` method is fitted twice with its defaults (1x50 ReLU,
heteroscedastic noise, 4,000 Adam steps), once with ``pseudo_data=0`` (the plain matrix-normal
layer) and once with ``pseudo_data=P`` (default 5, the paper's yacht example), through
:func:`vbayes.studies.uq.fit_regression` (inputs and targets standardised on the training split;
RMSE and NLL, nats per test point, in the data's units). Data: ``toy-gap`` and UCI yacht splits
``--splits`` (the Hernandez-Lobato splits in ``--yacht-dir``), printed next to the published
VMG test NLL on yacht, 1.30 (Louizos & Welling 2016; their own protocol and set-up:
Gamma noise precision, 2,000 epochs, noise on the pseudo-data, so not like for like).

Run: ``.venv/bin/python benchmarks/mvg_pseudo_data.py`` (about 5 minutes on one CPU thread);
``--json FILE`` also writes the per-fit figures.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

import vbayes
from vbayes.studies.uq import fit_regression

PUBLISHED_YACHT_NLL = 1.30


def fit(data: object, pseudo: int, seed: int) -> dict:
    result = fit_regression("mvg", data, seed=seed, options={"pseudo_data": pseudo})
    m = result.metrics
    if "error" in m:
        return {"error": m["error"]}
    return {"rmse": m["rmse"], "nll": m["nll"], "fit_seconds": m["fit_seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pseudo", type=int, default=5, help="pseudo-data points of the second fit (5)")
    ap.add_argument("--splits", type=int, nargs="*", default=[0, 1, 2, 3, 4], help="yacht splits (0-4)")
    ap.add_argument("--yacht-dir", default="../shared/uci/yacht")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write every fit's figures here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sets = [("toy-gap", vbayes.data.load("toy-gap"))]
    if args.splits:
        uci = vbayes.data.load("uci", data_dir=args.yacht_dir)
        sets += [(f"yacht/{k}", uci.split(k)) for k in args.splits]
    rows = []
    for name, data in sets:
        for pseudo in (0, args.pseudo):
            row = {"data": name, "pseudo_data": pseudo, **fit(data, pseudo, args.seed)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'data':<10} {'P':>2} {'RMSE':>8} {'NLL':>8}")
    for row in rows:
        if "error" in row:
            print(f"{row['data']:<10} {row['pseudo_data']:>2} error: {row['error']}")
        else:
            print(f"{row['data']:<10} {row['pseudo_data']:>2} {row['rmse']:8.3f} {row['nll']:8.3f}")
    for pseudo in (0, args.pseudo):
        yacht = [r for r in rows if r["data"].startswith("yacht") and r["pseudo_data"] == pseudo and "error" not in r]
        if len(yacht) > 1:
            rm, nl = [r["rmse"] for r in yacht], [r["nll"] for r in yacht]
            print(f"yacht mean over {len(yacht)} splits, P={pseudo}: RMSE {statistics.mean(rm):.3f} "
                  f"(sd {statistics.stdev(rm):.3f}), NLL {statistics.mean(nl):.3f} (sd {statistics.stdev(nl):.3f})")
    print(f"published VMG yacht NLL: {PUBLISHED_YACHT_NLL}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
