"""Stages of a ``vbayes uq`` (or demo) run: one method on one data set or split, kept once finished.

:func:`run_methods_in_stages` is :func:`~vbayes.studies.uq.pipeline.run_methods` that saves each
method's :class:`~vbayes.studies.uq.pipeline.MethodResult` (metrics and predictions) as a checkpoint
file in ``stage_dir`` as soon as it is done, and loads it instead of fitting again when the file
is there: an interrupted run resumed with ``--resume`` redoes only the unfinished stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from vbayes.train.checkpoint import load_checkpoint, plain_config, save_checkpoint
from vbayes.methods.predictive import ClassificationPrediction, RegressionPrediction
from vbayes.studies.uq.pipeline import MethodFactory, MethodResult, run_methods


def save_result(path: Path, result: MethodResult) -> None:
    """Write ``result`` atomically as a (weights-only) vbayes checkpoint."""
    preds: dict[str, dict[str, Any]] = {}
    for key, p in result.predictions.items():
        if isinstance(p, RegressionPrediction):
            preds[key] = {"kind": "regression", "mu": p.mu, "sigma": p.sigma, "info": plain_config(p.info)}
        else:
            preds[key] = {"kind": "classification", "probs": p.probs, "info": plain_config(p.info)}
    save_checkpoint(path, {"kind": "uq-stage", "metrics": plain_config(result.metrics), "predictions": preds})


def load_result(path: Path) -> MethodResult:
    """The :class:`MethodResult` that :func:`save_result` wrote."""
    data = load_checkpoint(path)
    preds: dict[str, Any] = {}
    for key, p in data["predictions"].items():
        if p["kind"] == "regression":
            preds[key] = RegressionPrediction(p["mu"], p["sigma"], p["info"])
        else:
            preds[key] = ClassificationPrediction(p["probs"], p["info"])
    return MethodResult(data["metrics"], preds)


def run_methods_in_stages(
    methods: Sequence[str], data: Any, factory: MethodFactory | None, stage_dir: str | Path | None, tag: str = "",
    **kwargs: Any,
) -> dict[str, MethodResult]:
    """:func:`run_methods` one method at a time, each kept as ``stage_dir/<tag><method>.pt``.

    Without ``stage_dir`` it is plain :func:`run_methods`. Keyword arguments go to it.
    """
    if stage_dir is None:
        return run_methods(methods, data, factory, **kwargs)
    folder = Path(stage_dir)
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, MethodResult] = {}
    for name in methods:
        path = folder / f"{tag}{name}.pt"
        if path.is_file():
            results[name] = load_result(path)
            continue
        results.update(run_methods([name], data, factory, **kwargs))
        save_result(path, results[name])
    return results
