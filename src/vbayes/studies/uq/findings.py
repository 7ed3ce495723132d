"""The quality-of-uncertainty study (Yao, Pan, Ghosh & Doshi-Velez 2019): every method held
against the HMC reference, and the lecture's four claims measured.

Inputs are the :class:`~vbayes.studies.uq.pipeline.MethodResult` of each method on one data set
(predictions on the original scale). The comparison is made on one set of inputs, ``key``: the
plotting grid of a 1-D toy or the test inputs of a UCI split. The predictive samples of f(x) are
the component means ``mu`` ``(S, M)`` of a prediction (the noise is left out: it is Gaussian by
construction); distances are divided by the training targets' std (standardised units).

- The reference is usable when the rank-normalised split R-hat of HMC's f(x) over the inputs is
  at most :data:`MAX_RHAT`; otherwise every finding says that it cannot judge.
- ``w2_to_reference``: mean over the inputs of the 1-D Wasserstein-2 distance between a method's
  and HMC's samples of f(x) (:func:`vbayes.metrics.distances.wasserstein_samples`).
- ``calibration``: Spearman's rank correlation across methods between test NLL (and the
  miscalibration area) and ``w2_to_reference``: does ranking methods by the usual metrics rank
  them by how close they are to the exact posterior predictive?
- ``structure``: MVG (structured) against mean-field BBB, by ``w2_to_reference``.
- ``ensembles``: the in-gap epistemic std of the ensemble across seeds (>= 5) against HMC's,
  whose own spread is read across its chains.
- ``gaussian``: how far HMC's samples of f(x) in the gap are from their moment-matched Gaussian
  (KS distance) and how much a Gaussian 95% interval there misses its level.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from vbayes.methods.diagnostics import ess, summarize
from vbayes.metrics.distances import gaussian_interval_coverage, ks_to_normal, spearman, wasserstein_samples
from vbayes.studies.uq.figures import display
from vbayes.studies.uq.pipeline import MethodResult

MAX_RHAT = 1.01
ENSEMBLE_SEEDS = 5
"""Ensemble fits (seeds ``seed, seed + 1, ...``) behind the ``ensembles`` finding."""
NULL_REPLICATES = 400
"""Gaussian sample sets drawn to calibrate the KS distance (:func:`null_ks`)."""


def in_gap(x: Tensor, meta: Mapping[str, Any]) -> Tensor:
    """``(M,)`` mask of the rows of ``x`` ``(M, 1)`` inside ``meta["gap"]``; all True without a gap."""
    if "gap" not in meta or x.shape[1] != 1:
        return torch.ones(x.shape[0], dtype=torch.bool)
    lo, hi = meta["gap"]
    return (x[:, 0] > lo) & (x[:, 0] < hi)


def chains_of(result: MethodResult, key: str) -> Tensor | None:
    """HMC's f(x) samples at ``key`` split into chains ``(C, T, M)``, or None when the prediction
    does not say how (no ``predict_chains``)."""
    pred = result.predictions[key]
    c = pred.info.get("predict_chains")
    if not isinstance(c, int) or c < 1 or pred.mu.shape[0] % c:
        return None
    return pred.mu.reshape(c, pred.mu.shape[0] // c, pred.mu.shape[1])


def reference_check(hmc: MethodResult | None, key: str) -> dict[str, Any]:
    """``{"ok", "rhat_predictions", "reason"}``: whether HMC's predictions at ``key`` mixed."""
    if hmc is None or not hmc.ok:
        why = "HMC did not run" if hmc is None else f"HMC failed: {hmc.metrics.get('error')}"
        return {"ok": False, "rhat_predictions": None, "reason": why}
    chains = chains_of(hmc, key)
    if chains is None or chains.shape[0] < 2 or chains.shape[1] < 4:
        return {"ok": False, "rhat_predictions": None, "reason": "HMC's predictions have fewer than 2 chains"}
    rhat = summarize(chains.double().numpy())["rhat_max"]
    ok = bool(rhat <= MAX_RHAT)
    reason = (f"R-hat on HMC's predictions {rhat:.4f} <= {MAX_RHAT}" if ok else
              f"R-hat on HMC's predictions {rhat:.4f} > {MAX_RHAT}: the chains disagree, so HMC is no reference")
    return {"ok": ok, "rhat_predictions": rhat, "reason": reason}


def w2_to_reference(result: MethodResult, hmc: MethodResult, key: str, scale: float) -> float:
    """Mean over the inputs at ``key`` of W2 between the method's and HMC's f(x) samples, divided
    by ``scale`` (the training targets' std)."""
    w2 = wasserstein_samples(result.predictions[key].mu, hmc.predictions[key].mu)
    return float(w2.mean()) / scale


def _epistemic_std(mu: Tensor, mask: Tensor) -> float:
    """Mean over the masked inputs of the std of f(x) across the rows of ``mu`` ``(S, M)``."""
    if mu.shape[0] < 2:
        return 0.0
    return float(mu.double().std(0, unbiased=False)[mask].mean())


def _cv(values: Sequence[float]) -> float:
    """Coefficient of variation (sample std / mean) of ``values``."""
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.std() / t.mean()) if len(values) > 1 and float(t.mean()) > 0 else math.nan


def calibration_finding(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Rank agreement between test NLL / miscalibration area and ``w2_to_reference``."""
    names = [k for k, m in metrics.items() if k != "hmc" and isinstance(m.get("w2_to_reference"), float)
             and isinstance(m.get("nll"), float)]
    if len(names) < 3:
        return {"verdict": "cannot judge: fewer than 3 methods besides HMC finished", "n_methods": len(names)}
    w2 = torch.tensor([metrics[k]["w2_to_reference"] for k in names])
    rho_nll = spearman(torch.tensor([metrics[k]["nll"] for k in names]), w2)
    rho_cal = spearman(torch.tensor([float(metrics[k].get("miscalibration_area", math.nan)) for k in names]), w2)
    best_nll = min(names, key=lambda k: metrics[k]["nll"])
    closest = min(names, key=lambda k: metrics[k]["w2_to_reference"])
    top = ("also the closest to HMC" if best_nll == closest else f"not the closest to HMC ({display(closest)})")
    if rho_nll >= 0.7 and best_nll == closest:
        verdict = (f"a fair guide here: test NLL ranks the methods as their distance to HMC does (Spearman "
                   f"{rho_nll:.2f} over {len(names)} methods), and the best test NLL ({display(best_nll)}) is {top}")
    elif rho_nll >= 0.7:
        verdict = (f"right on the whole, wrong at the top: Spearman {rho_nll:.2f} over {len(names)} methods, but the "
                   f"best test NLL ({display(best_nll)}) is {top}")
    else:
        verdict = (f"unreliable: Spearman between test NLL and distance to HMC is {rho_nll:.2f} over {len(names)} "
                   f"methods, and the best test NLL ({display(best_nll)}) is {top}")
    return {"n_methods": len(names), "spearman_nll_w2": rho_nll, "spearman_miscalibration_w2": rho_cal,
            "best_nll": best_nll, "closest_to_reference": closest, "verdict": verdict}


def structure_finding(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """MVG's distance to HMC against mean-field BBB's."""
    mvg, bbb = (metrics.get(k, {}).get("w2_to_reference") for k in ("mvg", "bbb"))
    if not (isinstance(mvg, float) and isinstance(bbb, float)):
        return {"verdict": "cannot judge: needs both mvg and bbb"}
    ratio = mvg / bbb if bbb > 0 else math.nan
    if ratio < 0.9:
        verdict = f"structure helped here: MVG is {1 - ratio:.0%} closer to HMC than mean-field BBB"
    elif ratio <= 1.1:
        verdict = f"structure made no real difference: MVG and BBB are equally far from HMC (ratio {ratio:.2f})"
    else:
        verdict = f"structure did not help: MVG is {ratio - 1:.0%} further from HMC than mean-field BBB"
    return {"mvg_w2": mvg, "bbb_w2": bbb, "ratio": ratio, "verdict": verdict}


def ensembles_finding(seeds: Sequence[MethodResult], hmc: MethodResult, key: str, mask: Tensor,
                      where: str = "in the gap") -> dict[str, Any]:
    """The epistemic std of the ensemble ``where`` (the masked inputs) across seeds, against HMC's
    across its chains."""
    values = [_epistemic_std(r.predictions[key].mu, mask) for r in seeds if r.ok]
    chains = chains_of(hmc, key)
    if len(values) < 2 or chains is None:
        return {"verdict": f"cannot judge: {len(values)} ensemble seeds finished "
                           f"(needs 2 or more, {ENSEMBLE_SEEDS} planned)"}
    hmc_value = _epistemic_std(hmc.predictions[key].mu, mask)
    per_chain = [_epistemic_std(c, mask) for c in chains]
    cv, cv_hmc = _cv(values), _cv(per_chain)
    low, high = min(values), max(values)
    inside = low <= hmc_value <= high
    unpredictable = cv > max(0.1, 2 * cv_hmc)
    verdict = (f"{'unpredictable' if unpredictable else 'stable here'}: across {len(values)} seeds the ensemble's "
               f"epistemic std {where} ranges {low:.3g}-{high:.3g} (spread {cv:.0%} of its mean; HMC's chains "
               f"{cv_hmc:.0%}), HMC's is {hmc_value:.3g}" + ("" if inside else ", outside the ensemble's range"))
    return {"seeds": len(values), "in_gap_std": values, "cv": cv, "reference_in_gap_std": hmc_value,
            "reference_chain_std": per_chain, "reference_chain_cv": cv_hmc, "reference_inside_range": inside,
            "verdict": verdict}


def null_ks(n: int, replicates: int = NULL_REPLICATES, seed: int = 0) -> tuple[float, float]:
    """Mean and 95th percentile of the KS distance of ``n`` independent Gaussian draws from their
    own moment-matched Gaussian (Lilliefors' statistic; the 95th percentile is about
    ``0.886 / sqrt(n)`` for large n), from ``replicates`` simulated sets."""
    gen = torch.Generator().manual_seed(seed)
    ks = ks_to_normal(torch.randn(max(int(n), 4), replicates, generator=gen, dtype=torch.float64))
    return float(ks.mean()), float(torch.quantile(ks, 0.95))


def _effective_draws(hmc: MethodResult, key: str, mask: Tensor) -> float:
    """Mean bulk ESS of HMC's f(x) over the masked inputs (its number of draws without chains)."""
    chains = chains_of(hmc, key)
    if chains is None or chains.shape[0] < 2 or chains.shape[1] < 4:
        return float(hmc.predictions[key].mu.shape[0])
    return float(np.mean(ess(chains[:, :, mask].double().numpy())))


def gaussian_finding(hmc: MethodResult, key: str, mask: Tensor, where: str = "in the gap") -> dict[str, Any]:
    """How far HMC's f(x) samples ``where`` (the masked inputs) are from their moment-matched
    Gaussian, against the same distance for Gaussian draws of HMC's effective sample size."""
    mu = hmc.predictions[key].mu[:, mask]
    ks = ks_to_normal(mu)
    coverage = gaussian_interval_coverage(mu, 0.95)
    n = _effective_draws(hmc, key, mask)
    null_mean, null_q95 = null_ks(round(n))
    far = float(ks.mean()) > null_q95
    verdict = (f"{'not Gaussian' if far else 'close to Gaussian'}: HMC's f(x) {where} is a KS distance "
               f"{float(ks.mean()):.3f} (mean; max {float(ks.max()):.3f}) from its moment-matched Gaussian; "
               f"Gaussian draws of its effective size ({n:.0f}) give {null_mean:.3f} on average and "
               f"{null_q95:.3f} at the 95th percentile; a Gaussian 95% interval there covers "
               f"{float(coverage.mean()):.1%} of HMC's draws")
    return {"ks_mean": float(ks.mean()), "ks_max": float(ks.max()), "effective_draws": n,
            "null_ks_mean": null_mean, "null_ks_q95": null_q95, "coverage95_mean": float(coverage.mean()),
            "coverage95_error": float((coverage - 0.95).abs().mean()), "inputs": int(mask.sum()),
            "verdict": verdict}


def add_reference_distances(results: Mapping[str, MethodResult], key: str, scale: float) -> dict[str, Any]:
    """Check HMC's predictions at ``key`` and, when they mixed, put ``w2_to_reference`` (``scale``:
    the training targets' std) into every other successful method's ``metrics`` (in place); HMC's
    own ``metrics`` get ``rhat_predictions``. Returns the reference check."""
    hmc = results.get("hmc")
    reference = {**reference_check(hmc, key), "inputs": key}
    if hmc is not None and hmc.ok:
        hmc.metrics["rhat_predictions"] = reference["rhat_predictions"]
    if reference["ok"]:
        assert hmc is not None
        for name, res in results.items():
            if name != "hmc" and res.ok:
                res.metrics["w2_to_reference"] = w2_to_reference(res, hmc, key, scale)
    return reference


def findings(metrics: Mapping[str, Mapping[str, Any]], reference: Mapping[str, Any], hmc: MethodResult | None,
             ensembles: Sequence[MethodResult], key: str, x: Tensor | None, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The four findings from the methods' ``metrics`` (with ``w2_to_reference``), the
    ``reference`` check, HMC's result and the ensemble's results over seeds (the main one
    included), on the inputs ``x`` ``(M, D)`` at ``key``; ``meta`` gives the gap, if any."""
    if not reference.get("ok") or hmc is None or x is None:
        return {"reference": dict(reference), "verdict": f"cannot judge: {reference.get('reason')}"}
    mask = in_gap(x, meta)
    where = "in the gap" if "gap" in meta else "on the test inputs"
    return {
        "reference": dict(reference),
        "region": where,
        "calibration": calibration_finding(metrics),
        "structure": structure_finding(metrics),
        "ensembles": ensembles_finding(ensembles, hmc, key, mask, where),
        "gaussian": gaussian_finding(hmc, key, mask, where),
    }
