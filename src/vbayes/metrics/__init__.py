"""Metrics of predictive distributions as plain functions with one signature.

Regression: ``f(pred: RegressionPrediction, y: Tensor (N,)) -> float``.
Classification: ``f(pred: ClassificationPrediction, y: Tensor (N,)) -> float``.

:data:`REGRESSION` and :data:`CLASSIFICATION` map each metric's key (as written in
``metrics.json``) to a :class:`MetricSpec` ``(function, display name, lower_is_better)`` for
tables; ``lower_is_better`` is ``None`` for metrics judged by closeness to a target (PICP).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from vbayes.metrics import classification, regression
from vbayes.metrics.classification import (
    accuracy,
    auroc_ood,
    brier,
    ece,
    mutual_information,
    predictive_entropy,
    reliability_curve,
)
from vbayes.metrics.regression import (
    calibration_curve,
    crps,
    log_likelihood,
    miscalibration_area,
    mixture_cdf,
    mixture_quantile,
    mpiw,
    picp,
    rmse,
)


class MetricSpec(NamedTuple):
    """A metric for tables: ``(function, display name, lower_is_better)``."""

    function: Callable[..., float]
    display: str
    lower_is_better: bool | None


REGRESSION: dict[str, MetricSpec] = {
    "rmse": MetricSpec(regression.rmse, "RMSE", True),
    "nll": MetricSpec(regression.nll, "NLL (nats)", True),
    "crps": MetricSpec(regression.crps, "CRPS", True),
    "picp95": MetricSpec(regression.picp95, "PICP 95%", None),
    "mpiw95": MetricSpec(regression.mpiw95, "MPIW 95%", True),
    "miscalibration_area": MetricSpec(regression.miscalibration_area, "Miscal. area", True),
}

CLASSIFICATION: dict[str, MetricSpec] = {
    "accuracy": MetricSpec(classification.accuracy, "Accuracy", False),
    "nll": MetricSpec(classification.nll, "NLL (nats)", True),
    "brier": MetricSpec(classification.brier, "Brier", True),
    "ece": MetricSpec(classification.ece, "ECE (15 bins)", True),
}

__all__ = [
    "CLASSIFICATION",
    "REGRESSION",
    "MetricSpec",
    "accuracy",
    "auroc_ood",
    "brier",
    "calibration_curve",
    "crps",
    "ece",
    "log_likelihood",
    "miscalibration_area",
    "mixture_cdf",
    "mixture_quantile",
    "mpiw",
    "mutual_information",
    "picp",
    "predictive_entropy",
    "reliability_curve",
    "rmse",
]
