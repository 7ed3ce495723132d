"""Inference methods for neural networks behind one interface.

>>> from vbayes.methods import get_method, METHOD_NAMES
>>> method = get_method("ensemble", task="regression", hidden=(50,), seed=0)
>>> method.fit(x_train, y_train)        # x (N, D) float32, y (N,) standardised float32
>>> pred = method.predict(x_test)       # RegressionPrediction: mu, sigma (S, M)

Classification: ``task="classification"``, integer labels, ``predict`` returns a
``ClassificationPrediction`` with ``probs`` ``(S, M, C)``. ``method.info`` holds diagnostics.
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

from vbayes.errors import VBayesError
from vbayes.methods.base import Method

_REGISTRY: dict[str, str] = {
    "output": "vbayes.methods.output:OutputMethod",
    "bbb": "vbayes.methods.variational:BBBMethod",
    "flipout": "vbayes.methods.variational:FlipoutMethod",
    "lrt": "vbayes.methods.variational:LRTMethod",
    "dropout": "vbayes.methods.dropout:DropoutMethod",
    "ensemble": "vbayes.methods.ensemble:EnsembleMethod",
    "sgld": "vbayes.methods.sgld:SGLDMethod",
    "hmc": "vbayes.methods.hmc:HMCMethod",
    "mvg": "vbayes.methods.mvg:MVGMethod",
    "bbalpha": "vbayes.methods.bbalpha:BBAlphaMethod",
    "pbp": "vbayes.methods.pbp:PBPMethod",
    "bbh": "vbayes.methods.bbh:BBHMethod",
    "vd": "vbayes.methods.vd:VDMethod",
}

METHOD_NAMES: list[str] = list(_REGISTRY)


def method_class(name: str) -> type[Method]:
    """The :class:`Method` subclass registered as ``name`` (VBayesError if unknown)."""
    if name not in _REGISTRY:
        raise VBayesError(f"unknown method {name!r}; choose one of: {', '.join(METHOD_NAMES)}")
    module_name, cls_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def get_method(
    name: str,
    task: str = "regression",
    n_classes: int | None = None,
    hidden: Sequence[int] = (50,),
    epochs: int | None = None,
    seed: int = 0,
    **options: Any,
) -> Method:
    """Build the inference method ``name`` (one of :data:`METHOD_NAMES`).

    ``options`` are method-specific (see each class's ``defaults``); an unknown name or option
    raises :class:`~vbayes.errors.VBayesError`.
    """
    cls = method_class(name)
    return cls(task=task, n_classes=n_classes, hidden=hidden, epochs=epochs, seed=seed, **options)


__all__ = ["METHOD_NAMES", "Method", "get_method", "method_class"]
