"""The UCI benchmark: every method on each standard split, means with standard errors."""

from __future__ import annotations

import math
from typing import Any, Sequence

from tqdm.auto import tqdm

from vbayes.data.uci import UCIData
from vbayes.errors import VBayesError
from vbayes.studies.uq.pipeline import MethodFactory, MethodResult, target_scale
from vbayes.studies.uq.findings import add_reference_distances
from vbayes.studies.uq.stages import run_methods_in_stages
from vbayes.studies.uq.study import uci_study

#: keys that are not averaged over splits
_NOT_AVERAGED = {"error", "splits", "errors"}


def aggregate(per_split: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean over splits of every numeric figure, with a ``<key>_se`` twin (sample std / sqrt(n),
    ``None`` for one split) and ``splits`` (how many succeeded); a figure missing (or None) on
    some splits is averaged over the others, and ``<key>_splits`` says over how many. HMC
    diagnostics also get their worst case over splits: ``rhat_max_max``, ``rhat_predictions_max``,
    ``ess_min_min``, ``divergences_sum``. Failed splits are listed in ``errors``; when all failed
    the result is ``{"error": first message, "splits": 0}``."""
    ok = [m for m in per_split if "error" not in m]
    failed = [m["error"] for m in per_split if "error" in m]
    if not ok:
        return {"error": failed[0] if failed else "no splits ran", "splits": 0}
    out: dict[str, Any] = {}
    keys = [k for k in dict.fromkeys(k for m in ok for k in m) if k not in _NOT_AVERAGED]
    for key in keys:
        values = [m[key] for m in ok if key in m and m[key] is not None]
        if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        if len(values) < len(ok):
            out[f"{key}_splits"] = len(values)  # e.g. w2_to_reference: only where HMC mixed
        vals = [float(v) for v in values]
        n = len(vals)
        mean = sum(vals) / n
        out[key] = mean
        if n > 1:
            var = sum((v - mean) ** 2 for v in vals) / (n - 1)
            out[f"{key}_se"] = math.sqrt(var / n)
        else:
            out[f"{key}_se"] = None
    for key, worst in (("rhat_max", max), ("rhat_predictions", max), ("ess_min", min), ("divergences", sum)):
        vals = [m[key] for m in ok if isinstance(m.get(key), (int, float))]
        if vals:
            out[f"{key}_{worst.__name__}"] = worst(vals)  # worst chain over all splits
    out["splits"] = len(ok)
    if failed:
        out["errors"] = failed
    return out


def run_uci(
    uci: UCIData,
    methods: Sequence[str],
    factory: MethodFactory | None = None,
    *,
    splits: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    hidden: Sequence[int] | None = None,
    progress: bool = True,
    noise: str | None = None,
    noise_std: float | None = None,
    stage_dir: Any = None,
    method_options: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, MethodResult], dict[str, Any] | None]:
    """Run ``methods`` on the first ``splits`` standard splits (all when ``None``).

    Hidden width defaults to the protocol's (``n_hidden.txt``, one layer); the seed of split k
    is ``seed + k``; ``method_options`` as in :func:`~vbayes.studies.uq.run_uq`. With
    ``stage_dir`` each method's result on each split is kept there (``split<k>-<method>.pt``)
    and not fitted again. Returns ``(metrics, first_split_results, study)``: per-method
    aggregates (see :func:`aggregate`), the full results of split 0 (kept for calibration plots)
    and, when ``hmc`` is among the methods, the quality-of-uncertainty findings
    (:func:`~vbayes.studies.uq.study.uci_study`; else None).
    """
    n = uci.n_splits if splits is None else splits
    if not 1 <= n <= uci.n_splits:
        raise VBayesError(f"--splits {n} out of range: {uci.name} has {uci.n_splits} splits")
    hidden = tuple(hidden) if hidden is not None else (uci.n_hidden,)
    per_method: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    first: dict[str, MethodResult] = {}
    judged: tuple[int, dict[str, MethodResult], Any] | None = None  # the first split where HMC mixed
    references: list[dict[str, Any]] = []
    fit_kw = dict(hidden=hidden, epochs=epochs, noise=noise, noise_std=noise_std, method_options=method_options)
    for k in tqdm(range(n), desc=f"{uci.name} splits", disable=not progress):
        split = uci.split(k)
        results = run_methods_in_stages(methods, split, factory, stage_dir, f"split{k}-", progress=progress,
                                        seed=seed + k, **fit_kw)
        if "hmc" in results:
            references.append(add_reference_distances(results, "test", target_scale(split)))
            if judged is None and references[-1]["ok"]:
                judged = (k, results, split)
        for name, res in results.items():
            per_method[name].append(res.metrics)
        if k == 0:
            first = results
    metrics = {name: aggregate(ms) for name, ms in per_method.items()}
    study = None
    if "hmc" in first:
        study = uci_study(metrics, references, judged, factory, stage_dir, seed, **fit_kw)
    return metrics, first, study
