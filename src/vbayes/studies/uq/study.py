"""Running the quality-of-uncertainty study beside a ``vbayes uq`` comparison.

Whenever ``hmc`` is among the methods of a regression run, :func:`toy_study` (1-D toys, on the
plotting grid) or :func:`uci_study` (UCI, on the test inputs) computes the reference check, each
method's ``w2_to_reference`` and the findings of :mod:`vbayes.studies.uq.findings`. The
``ensembles`` finding needs the ensemble on :data:`~vbayes.studies.uq.findings.ENSEMBLE_SEEDS`
seeds: the comparison's own fit plus fits with seeds ``seed + 1, ...``, kept as stages
(``seed<k>-ensemble.pt``) like every other fit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from vbayes.data.tabular import RegressionData
from vbayes.studies.uq.findings import ENSEMBLE_SEEDS, add_reference_distances, findings
from vbayes.studies.uq.pipeline import MethodFactory, MethodResult, target_scale
from vbayes.studies.uq.stages import run_methods_in_stages


def ensemble_seeds(results: Mapping[str, MethodResult], data: RegressionData, factory: MethodFactory | None,
                   stage_dir: str | Path | None, tag: str, seed: int, **kwargs: Any) -> list[MethodResult]:
    """The ensemble's results on ``data`` over :data:`ENSEMBLE_SEEDS` seeds: ``results["ensemble"]``
    (seed ``seed``) and fits with seeds ``seed + 1, ...`` (empty when the ensemble is not among
    ``results``). ``kwargs`` go to :func:`~vbayes.studies.uq.pipeline.run_methods`."""
    if "ensemble" not in results:
        return []
    out = [results["ensemble"]]
    for k in range(1, ENSEMBLE_SEEDS):
        extra = run_methods_in_stages(["ensemble"], data, factory, stage_dir, f"{tag}seed{k}-", progress=False,
                                      seed=seed + k, **kwargs)
        out.append(extra["ensemble"])
    return out


def toy_study(results: Mapping[str, MethodResult], data: RegressionData, factory: MethodFactory | None,
              stage_dir: str | Path | None, seed: int, **kwargs: Any) -> dict[str, Any] | None:
    """The study on a 1-D toy's grid (None without ``hmc``); adds ``w2_to_reference`` to the
    results' metrics in place."""
    if "hmc" not in results or data.x_grid is None:
        return None
    reference = add_reference_distances(results, "grid", target_scale(data))
    seeds = ensemble_seeds(results, data, factory, stage_dir, "", seed, **kwargs) if reference["ok"] else []
    metrics = {k: r.metrics for k, r in results.items()}
    return findings(metrics, reference, results["hmc"], seeds, "grid", data.x_grid, data.meta)


def uci_reference(per_split: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One reference check from the checks of every split: usable when HMC mixed on all of them."""
    rhats = [r["rhat_predictions"] for r in per_split if isinstance(r.get("rhat_predictions"), float)]
    bad = [i for i, r in enumerate(per_split) if not r.get("ok")]
    worst = max(rhats) if rhats else math.nan
    if not bad:
        reason = f"R-hat on HMC's test predictions at most {worst:.4f} over {len(per_split)} splits"
    else:
        reason = (f"HMC is no reference on split(s) {', '.join(map(str, bad))}: "
                  + "; ".join(per_split[i]["reason"] for i in bad[:3]))
    return {"ok": not bad, "rhat_predictions": worst, "reason": reason, "inputs": "test", "splits": len(per_split)}


def uci_study(metrics: Mapping[str, Mapping[str, Any]], references: Sequence[Mapping[str, Any]],
              first: Mapping[str, MethodResult], split0: RegressionData, factory: MethodFactory | None,
              stage_dir: str | Path | None, seed: int, **kwargs: Any) -> dict[str, Any] | None:
    """The study on UCI: ``metrics`` are the means over splits (``w2_to_reference`` included),
    ``references`` the check of each split; the ensemble's seeds and the Gaussian check use split 0
    (``first``, ``split0``). None without ``hmc``."""
    if "hmc" not in first:
        return None
    reference = uci_reference(references)
    seeds = ensemble_seeds(first, split0, factory, stage_dir, "split0-", seed, **kwargs) if reference["ok"] else []
    return findings(metrics, reference, first["hmc"], seeds, "test", split0.x_test, split0.meta)
