"""Uncertainty quantification experiments: every inference method on the same data, same metrics.

>>> from vbayes.studies.uq import run_toy_comparison
>>> metrics = run_toy_comparison(["ensemble", "bbb"], data="toy-gap", epochs=200, report=report)
"""

from vbayes.studies.uq.experiment import DATA_SETS, load_experiment_data, run_toy_comparison, run_uq
from vbayes.studies.uq.pipeline import (
    MethodResult,
    epistemic_ratio,
    fit_classification,
    fit_regression,
    resolve_methods,
    run_methods,
)
from vbayes.studies.uq.published import CITATION, PUBLISHED
from vbayes.studies.uq.uci import aggregate, run_uci

__all__ = [
    "CITATION",
    "DATA_SETS",
    "PUBLISHED",
    "MethodResult",
    "aggregate",
    "epistemic_ratio",
    "fit_classification",
    "fit_regression",
    "load_experiment_data",
    "resolve_methods",
    "run_methods",
    "run_toy_comparison",
    "run_uci",
    "run_uq",
]
