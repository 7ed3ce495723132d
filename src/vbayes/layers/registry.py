"""The one estimator registry: estimator name -> Bayesian layer class for each deterministic op.

Every caller that turns an estimator name into a layer (``to_bayesian``, the ``bbb`` / ``flipout``
/ ``lrt`` methods, the Bayesian auto-encoder, the benchmarks) looks it up here.

>>> layer_class("flipout")            # LinearFlipout
>>> layer_class("bbb", nn.Conv2d)     # Conv2dReparam ("bbb" is Bayes by Backprop, an alias)
"""

from __future__ import annotations

from torch import nn

from vbayes.layers.flipout import (Conv1dFlipout, Conv2dFlipout, ConvTranspose1dFlipout, ConvTranspose2dFlipout,
                                   LinearFlipout)
from vbayes.layers.lrt import Conv1dLRT, Conv2dLRT, ConvTranspose1dLRT, ConvTranspose2dLRT, LinearLRT
from vbayes.layers.reparam import (Conv1dReparam, Conv2dReparam, ConvTranspose1dReparam, ConvTranspose2dReparam,
                                   LinearReparam)

__all__ = ["ESTIMATORS", "ESTIMATOR_ALIASES", "LAYERS", "layer_class"]

LAYERS: dict[str, dict[type[nn.Module], type[nn.Module]]] = {
    "reparam": {nn.Linear: LinearReparam, nn.Conv1d: Conv1dReparam, nn.Conv2d: Conv2dReparam,
                nn.ConvTranspose1d: ConvTranspose1dReparam, nn.ConvTranspose2d: ConvTranspose2dReparam},
    "flipout": {nn.Linear: LinearFlipout, nn.Conv1d: Conv1dFlipout, nn.Conv2d: Conv2dFlipout,
                nn.ConvTranspose1d: ConvTranspose1dFlipout, nn.ConvTranspose2d: ConvTranspose2dFlipout},
    "lrt": {nn.Linear: LinearLRT, nn.Conv1d: Conv1dLRT, nn.Conv2d: Conv2dLRT,
            nn.ConvTranspose1d: ConvTranspose1dLRT, nn.ConvTranspose2d: ConvTranspose2dLRT},
}
"""Estimator -> {deterministic op -> Bayesian layer}."""

ESTIMATORS: tuple[str, ...] = tuple(LAYERS)
"""The estimators: ``reparam`` (Bayes by Backprop), ``flipout``, ``lrt``."""

ESTIMATOR_ALIASES = {"bbb": "reparam"}


def layer_class(estimator: str, op: type[nn.Module] = nn.Linear) -> type[nn.Module]:
    """The Bayesian layer class of ``estimator`` (or an alias such as ``bbb``) for ``op``.

    Raises ``ValueError`` naming the choices for an unknown estimator or op.
    """
    name = ESTIMATOR_ALIASES.get(estimator, estimator)
    if name not in LAYERS:
        choices = ", ".join([*ESTIMATORS, *ESTIMATOR_ALIASES])
        raise ValueError(f"unknown estimator {estimator!r}; choose one of: {choices}")
    table = LAYERS[name]
    if op not in table:
        raise ValueError(f"no Bayesian layer for {op.__name__}; supported: {', '.join(t.__name__ for t in table)}")
    return table[op]
