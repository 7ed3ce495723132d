"""The ``vbayes uq`` experiment: load a data set, run the methods, write metrics.json, figures and report.html."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from vbayes.data.ood import load_image_classification
from vbayes.data.tabular import RegressionData
from vbayes.errors import DataError, VBayesError
from vbayes.files import write_json
from vbayes.files import json_ready
from vbayes.studies.uq.pipeline import MethodFactory
from vbayes.studies.uq.report import add_classification_sections, add_regression_sections, add_uci_sections
from vbayes.studies.uq.stages import run_methods_in_stages
from vbayes.studies.uq.study import toy_study
from vbayes.studies.uq.study_report import add_study_sections

REGRESSION_SETS = ("toy-gap", "cubic", "cubic-gap", "wiggle-gap")
CLASSIFICATION_SETS = ("moons", "digits", "mnist5k")
DATA_SETS = REGRESSION_SETS + CLASSIFICATION_SETS + ("uci",)


def _truth(name: str) -> Any:
    if name == "toy-gap":
        from vbayes.data.toy import gap_function

        return gap_function
    if name == "cubic":
        return lambda x: x**3
    if name in ("cubic-gap", "wiggle-gap"):
        from vbayes.data import gap_toys

        return gap_toys.cubic_gap_function if name == "cubic-gap" else gap_toys.wiggle_gap_function
    return None


def load_experiment_data(name: str, seed: int = 0, data_dir: str | os.PathLike[str] | None = None) -> Any:
    """The data for ``vbayes uq --data name``: :class:`RegressionData`, :class:`ClassificationData`
    or (``uci``) :class:`~vbayes.data.uci.UCIData`. Unknown names raise :class:`DataError`."""
    from vbayes.data import load

    if name not in DATA_SETS:
        raise DataError(f"unknown --data {name!r}; choose one of: {', '.join(DATA_SETS)}")
    if name == "uci":
        return load("uci", data_dir=data_dir)
    if name in CLASSIFICATION_SETS and name != "moons":
        return load_image_classification(name, seed=seed, data_dir=data_dir)
    return load(name, seed=seed)


def run_uq(
    data: str,
    methods: Sequence[str],
    out: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    splits: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    hidden: Sequence[int] | None = None,
    factory: MethodFactory | None = None,
    progress: bool = True,
    command: str = "",
    noise: str | None = None,
    noise_std: float | None = None,
    stage_dir: str | os.PathLike[str] | None = None,
    method_options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the comparison and write ``out/metrics.json``, ``out/figures/*.png`` and ``out/report.html``.

    ``method_options`` maps a method name to its options (``vbayes uq --option NAME.KEY=VALUE``),
    e.g. ``{"pbp": {"epochs": 400}, "mvg": {"pseudo_data": 5}}``; ``epochs`` there overrides the
    run's ``epochs`` for that method.

    Returns what ``metrics.json`` holds: the metrics (method name -> figures) and, when ``hmc``
    is among the methods of a regression run, ``"findings"``: the quality-of-uncertainty study
    (:mod:`vbayes.studies.uq.findings`). ``out`` must exist. ``noise`` / ``noise_std``
    (regression, ``noise_std`` in the data's units) set every method's noise model. With
    ``stage_dir`` each finished method (on each split) is kept there and not fitted again
    (:mod:`vbayes.studies.uq.stages`).
    """
    from vbayes.report import Report

    out = Path(out)
    loaded = load_experiment_data(data, seed, data_dir)
    config = {"data": data, "methods": list(methods), "epochs": epochs if epochs is not None else "method default",
              "seed": seed, "hidden": list(hidden or (50,)), "noise": noise or "method default",
              "noise_std": noise_std, "method_options": dict(method_options or {})}
    if data == "uci":
        from vbayes.studies.uq.uci import run_uci

        n = loaded.n_splits if splits is None else splits
        if n > loaded.n_splits:
            raise VBayesError(f"--splits {n} but {loaded.name} has only {loaded.n_splits} splits")
        config.update(data_dir=str(data_dir), uci_set=loaded.name, splits=n, hidden=list(hidden or (loaded.n_hidden,)))
        metrics, first, study = run_uci(loaded, methods, factory, splits=n, epochs=epochs, seed=seed, hidden=hidden,
                                        progress=progress, noise=noise, noise_std=noise_std, stage_dir=stage_dir,
                                        method_options=method_options)
        title = f"Uncertainty: UCI {loaded.name}"
    else:
        if splits is not None:
            raise VBayesError("--splits applies to --data uci only")
        kw = {"hidden": tuple(hidden) if hidden else (50,), "epochs": epochs, "seed": seed,
              "method_options": method_options}
        if isinstance(loaded, RegressionData):
            kw.update(noise=noise, noise_std=noise_std)
        elif noise or noise_std:
            raise VBayesError("--noise and --noise-std apply to regression data")
        results = run_methods_in_stages(methods, loaded, factory, stage_dir, progress=progress, **kw)
        study = None
        if isinstance(loaded, RegressionData):
            fit_kw = {k: v for k, v in kw.items() if k != "seed"}
            study = toy_study(results, loaded, factory, stage_dir, seed, **fit_kw)
        metrics = {k: r.metrics for k, r in results.items()}
        title = f"Uncertainty: {data}"
    metrics = json_ready(metrics)
    written = {**metrics, **({"findings": json_ready(study)} if study else {})}
    write_json(out / "metrics.json", written)
    report = Report(title, subtitle=command)
    report.add_config(config)
    if data == "uci":
        add_uci_sections(report, loaded.name, metrics, first, loaded.split(0).y_test.double())
    elif isinstance(loaded, RegressionData):
        add_regression_sections(report, loaded, results, metrics, truth=_truth(data))
    else:
        add_classification_sections(report, loaded, results, metrics)
    if study:
        add_study_sections(report, written["findings"], metrics)
    report.write(out)
    return written


def run_toy_comparison(
    methods: Sequence[str] | str = "all",
    data: str = "toy-gap",
    epochs: int | None = None,
    seed: int = 0,
    report: Any = None,
    *,
    hidden: Sequence[int] = (50,),
    factory: MethodFactory | None = None,
    progress: bool = False,
    method_options: dict[str, dict[str, Any]] | None = None,
    noise: str | None = None,
    noise_std: float | None = None,
    stage_dir: str | os.PathLike[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Compare ``methods`` on a 1-D toy (``toy-gap`` or ``cubic``) and, when ``report`` (a
    :class:`vbayes.report.Report`) is given, append the bands figure, the metrics table and the
    gap reading to it (figure names prefixed ``uq_``). ``method_options`` maps a method name to
    its options (e.g. ``{"hmc": {"num_samples": 200}}``); ``stage_dir`` keeps each finished method
    (see :func:`run_uq`). Returns the metrics per method."""
    from vbayes.studies.uq.pipeline import resolve_methods

    if data not in REGRESSION_SETS:
        raise DataError(f"run_toy_comparison: data must be one of {', '.join(REGRESSION_SETS)}, got {data!r}")
    names = resolve_methods(methods)
    loaded = load_experiment_data(data, seed)
    results = run_methods_in_stages(names, loaded, factory, stage_dir, progress=progress, hidden=tuple(hidden),
                                    epochs=epochs, seed=seed, method_options=method_options, noise=noise,
                                    noise_std=noise_std)
    metrics = json_ready({k: r.metrics for k, r in results.items()})
    if report is not None:
        report.add_section(f"Inference methods on {data}")
        add_regression_sections(report, loaded, results, metrics, truth=_truth(data), prefix="uq_")
    return metrics
