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
from vbayes.studies.uq.findings import ENSEMBLE_SEEDS, MAX_RHAT, add_reference_distances, findings
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
    """One reference check from the checks of every split: usable when HMC mixed on at least one
    split; ``w2_to_reference`` then averages over those splits only."""
    rhats = [r["rhat_predictions"] for r in per_split if isinstance(r.get("rhat_predictions"), float)]
    good = [i for i, r in enumerate(per_split) if r.get("ok")]
    bad = [i for i in range(len(per_split)) if i not in good]
    if good:
        judged = max(per_split[i]["rhat_predictions"] for i in good)
        reason = (f"R-hat on HMC's test predictions at most {judged:.4f} on "
                  f"{len(good)} of {len(per_split)} splits; the distances average over those")
        if bad:
            reason += (f" (HMC did not mix on split(s) {', '.join(map(str, bad))}: R-hat "
                       + ", ".join(f"{per_split[i]['rhat_predictions']:.3f}" for i in bad
                                   if isinstance(per_split[i].get("rhat_predictions"), float)) + ")")
    else:
        worst = min(rhats) if rhats else math.nan
        reason = (f"HMC did not mix on any of the {len(per_split)} splits (R-hat on its test predictions at least "
                  f"{worst:.3f} > {MAX_RHAT})")
    return {"ok": bool(good), "rhat_predictions": max(rhats) if rhats else None, "reason": reason,
            "inputs": "test", "splits": len(per_split), "splits_judged": good}


def uci_study(metrics: Mapping[str, Mapping[str, Any]], references: Sequence[Mapping[str, Any]],
              judged: tuple[int, Mapping[str, MethodResult], RegressionData] | None, factory: MethodFactory | None,
              stage_dir: str | Path | None, seed: int, **kwargs: Any) -> dict[str, Any]:
    """The study on UCI: ``metrics`` are the means over splits (``w2_to_reference`` over the
    splits where HMC mixed), ``references`` the check of each split, ``judged`` the index, results
    and data of the first split where HMC mixed (None if none): the ensemble's seeds and the
    Gaussian check use it."""
    reference = uci_reference(references)
    if judged is None:
        return findings(metrics, reference, None, [], "test", None, {})
    k, results, split = judged
    seeds = ensemble_seeds(results, split, factory, stage_dir, f"split{k}-", seed + k, **kwargs)
    return findings(metrics, reference, results["hmc"], seeds, "test", split.x_test, split.meta)
