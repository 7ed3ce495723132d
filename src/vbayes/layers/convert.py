"""``to_bayesian``: turn the Linear / Conv / ConvTranspose modules of any model into Bayesian ones.

Every hyperparameter (features, kernel, stride, padding, dilation, groups, output padding,
padding mode, bias, device, dtype) is kept and the posterior mean is set to the trained weights,
so with sigma -> 0 (or in ``sampling_mode(model, "mean")``) the converted model computes the
original function. With ``moped_delta`` the posterior std is MOPED's delta * |w|
(Krishnan et al. 2020, "Specifying weight priors in Bayesian deep neural networks with
empirical Bayes").
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from vbayes.layers._variational import DEFAULT_POSTERIOR_STD, VariationalLayer
from vbayes.layers.registry import ESTIMATOR_ALIASES, LAYERS
from vbayes.layers.registry import ESTIMATORS as REGISTERED

__all__ = ["to_bayesian", "ESTIMATORS"]

ESTIMATORS = (*REGISTERED, *ESTIMATOR_ALIASES)


def _convert_one(module: nn.Module, cls: type, prior: Any, std: float, moped_delta: float | None) -> VariationalLayer:
    w = module.weight
    kw: dict[str, Any] = {"prior": prior, "posterior_std_init": std, "device": w.device, "dtype": w.dtype}
    has_bias = module.bias is not None
    if isinstance(module, nn.Linear):
        new = cls(module.in_features, module.out_features, has_bias, **kw)
    elif isinstance(module, nn.modules.conv._ConvTransposeNd):
        if module.padding_mode != "zeros":
            raise ValueError(f"to_bayesian: {type(module).__name__} with padding_mode={module.padding_mode!r} "
                             "is not supported")
        new = cls(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                  module.output_padding, module.groups, has_bias, module.dilation, **kw)
    else:
        new = cls(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                  module.dilation, module.groups, has_bias, module.padding_mode, **kw)
    new.load_deterministic(w.detach(), module.bias.detach() if has_bias else None, moped_delta)
    new.train(module.training)
    return new


#: Modules with weights that are deliberately left deterministic (normalisation layers).
_KEPT = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def _unconvertible(model: nn.Module, table: dict[type, type]) -> list[str]:
    """``"name (Class)"`` of every module with weights of its own that ``table`` does not convert."""
    return [f"{name or '<model>'} ({type(m).__name__})" for name, m in model.named_modules()
            if type(m) not in table and not isinstance(m, (VariationalLayer, LazyModuleMixin, *_KEPT))
            and any(True for _ in m.parameters(recurse=False))]  # fmt: skip


def to_bayesian(model: nn.Module, estimator: str = "flipout", prior: Any = None, moped_delta: float | None = None,
                posterior_std_init: float = DEFAULT_POSTERIOR_STD, inplace: bool = False,
                strict: bool = False) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear``, ``nn.Conv1d/2d`` and ``nn.ConvTranspose1d/2d``
    modules are replaced by Bayesian layers with posterior mean = their weights.

    Args:
        model: any module (its own class may be one of the converted ones).
        estimator: "flipout", "reparam" (alias "bbb", Bayes by Backprop) or "lrt".
        prior: weight prior of the new layers (default ``priors.Normal(0, 1)``).
        moped_delta: if given, sigma = moped_delta * |w| (MOPED); otherwise sigma =
            ``posterior_std_init`` everywhere.
        posterior_std_init: initial posterior std when ``moped_delta`` is None (> 0).
        inplace: modify ``model`` itself instead of a deep copy.
        strict: raise instead of warn when a module with weights (e.g. ``nn.LSTM``,
            ``nn.Conv3d``, ``nn.Embedding``, a subclass of ``nn.Linear``) cannot be converted.

    Returns:
        The converted model. Only exact instances of the torch classes are replaced (a user
        subclass may override ``forward``); lazy modules must be initialised first. Modules with
        weights that stay deterministic (normalisation layers aside) are named in a
        ``UserWarning``, or a ``ValueError`` with ``strict=True``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: unknown estimator, ``moped_delta <= 0``, an unsupported module setting, or
            (``strict``) a module that cannot be converted.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"to_bayesian: model must be a torch.nn.Module, got {type(model).__name__}")
    key = estimator.lower() if isinstance(estimator, str) else estimator
    if key not in ESTIMATORS:
        raise ValueError(f"to_bayesian: unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    if moped_delta is not None and not (float(moped_delta) > 0 and float(moped_delta) < float("inf")):
        raise ValueError(f"to_bayesian: moped_delta must be a finite number > 0, got {moped_delta!r}")
    table = LAYERS[ESTIMATOR_ALIASES.get(key, key)]
    if not inplace:
        model = copy.deepcopy(model)
    if type(model) in table:
        return _convert_one(model, table[type(model)], prior, posterior_std_init, moped_delta)
    left = _unconvertible(model, table)
    if left and strict:
        raise ValueError(f"to_bayesian: cannot convert {', '.join(left)}; pass strict=False to keep them deterministic")
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LazyModuleMixin) and child.has_uninitialized_params():
                raise ValueError(f"to_bayesian: {name} ({type(child).__name__}) is an uninitialised lazy "
                                 "module; run one forward pass first")
            cls = table.get(type(child))
            if cls is None:
                continue
            setattr(parent, name, _convert_one(child, cls, prior, posterior_std_init, moped_delta))
    if left:
        warnings.warn(f"to_bayesian: left deterministic (no Bayesian version): {', '.join(left)}", stacklevel=2)
    return model
