"""The shared machinery of every Bayesian module.

A :class:`BayesianModule` is any ``nn.Module`` that contributes a KL term to the ELBO. The KL
comes in two kinds, told apart by the class attribute :attr:`BayesianModule.kl_scope`:

* ``"global"``: the KL of parameters shared by the whole data set -- a Bayesian layer's
  KL(q(w) || p(w)). It is paid once per data set, so per training example it is KL / N.
* ``"local"``: the KL of per-example latent variables -- stochastic hidden units'
  KL(q(z_i | x_i) || p(z_i)), computed in the last forward pass. Each example pays its own, so
  per example it is the batch mean.

``vbayes.kl_divergence(model)`` sums :meth:`BayesianModule.kl_divergence` over every such module
(nats, both kinds added as they are: the weights' KL for the data set plus the latents' KL for
the last batch). :func:`global_kl` and :func:`local_kl` give the two kinds apart, in the units
:func:`vbayes.elbo_loss` adds them in.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

KL_SCOPES = ("global", "local")


class BayesianModule(nn.Module):
    """Base class of modules whose ``kl_divergence()`` enters the ELBO.

    ``sampling`` is ``"sample"`` (draw noise in every forward, in train and eval mode alike) or
    ``"mean"`` (use the posterior mean); :func:`vbayes.sampling_mode` switches a whole model.
    Subclasses that draw noise honour it.

    ``kl_scope`` is ``"global"`` (the default: a KL of parameters, paid once per data set) or
    ``"local"`` (a KL of per-example latent variables of the last forward pass). A local module
    also implements :meth:`example_kl`.
    """

    sampling: str = "sample"
    kl_scope: ClassVar[str] = "global"

    def kl_divergence(self) -> Tensor:
        """Scalar KL term of this module, in nats (summed over its weights, or over its units
        and the examples of the last forward pass)."""
        raise NotImplementedError

    def example_kl(self) -> Tensor:
        """Local modules: the KL of each example of the last forward pass, ``(B,)`` nats.

        Its sum is :meth:`kl_divergence`. Global modules have no per-example KL.
        """
        raise TypeError(f"{type(self).__name__}: kl_scope is {self.kl_scope!r}; only a 'local' "
                        "BayesianModule has a per-example KL")


def _bayesian_modules(model: nn.Module) -> list[BayesianModule]:
    found = [m for m in model.modules() if isinstance(m, BayesianModule)]
    for m in found:
        if m.kl_scope not in KL_SCOPES:
            raise ValueError(f"{type(m).__name__}: kl_scope must be one of {KL_SCOPES}, got {m.kl_scope!r}")
    return found


def _zero(model: nn.Module) -> Tensor:
    param = next(model.parameters(), None)
    return torch.zeros((), device=param.device if param is not None else None)


def _sum(terms: list[Tensor], model: nn.Module) -> Tensor:
    if not terms:
        return _zero(model)
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def kl_divergence(model: nn.Module) -> Tensor:
    """Sum of ``kl_divergence()`` over every :class:`BayesianModule` in ``model`` (nats).

    Global (weight) and local (latent) KLs are added as they are; to scale them for the ELBO per
    example use :func:`global_kl` / N and :func:`local_kl`, or :func:`vbayes.elbo_loss`.
    Returns a scalar tensor (0 when the model has no Bayesian module). Nested Bayesian modules
    are counted once each: a BayesianModule's own children are not visited twice.
    """
    return _sum([m.kl_divergence() for m in _bayesian_modules(model)], model)


def global_kl(model: nn.Module) -> Tensor:
    """Sum of ``kl_divergence()`` over the modules with ``kl_scope == "global"`` (nats per data set).

    The KL of the weights: divide it by the number of training examples N for nats per example.
    Returns a scalar tensor (0 when there is none).
    """
    return _sum([m.kl_divergence() for m in _bayesian_modules(model) if m.kl_scope == "global"], model)


def local_kl(model: nn.Module) -> Tensor:
    """Batch mean of the per-example KL of the modules with ``kl_scope == "local"`` (nats per example).

    For each local module, ``example_kl()`` of its last forward pass averaged over that batch;
    summed over the modules. Returns a scalar tensor (0 when there is none).
    """
    return _sum([m.example_kl().mean() for m in _bayesian_modules(model) if m.kl_scope == "local"], model)


def _local_batch_sizes(model: nn.Module) -> dict[str, int]:
    """Number of examples of the last forward pass of every local module, by module name."""
    sizes = {}
    for name, m in model.named_modules():
        if isinstance(m, BayesianModule) and m.kl_scope == "local":
            sizes[name or type(m).__name__] = int(m.example_kl().shape[0])
    return sizes


def check_positive_ints(owner: str, **sizes: object) -> None:
    """Raise ``ValueError`` naming the first of ``sizes`` (e.g. ``in_features=...``) that is not a
    positive int; ``owner`` is the layer's class name."""
    for arg, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}: {arg} must be a positive int, got {value!r}")


def check_conv_channels(owner: str, in_channels: object, out_channels: object, groups: object) -> None:
    """Raise ``ValueError`` unless the channel counts and ``groups`` are positive ints and both
    channel counts are divisible by ``groups`` (the sizes of a convolution)."""
    check_positive_ints(owner, in_channels=in_channels, out_channels=out_channels, groups=groups)
    assert isinstance(in_channels, int) and isinstance(out_channels, int) and isinstance(groups, int)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{owner}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                         f"must be divisible by groups ({groups})")


def check_features_input(owner: str, x: object, in_features: int) -> None:
    """Raise for an input of a dense layer that is not a Tensor ``(*, in_features)``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: input must be a Tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[-1] != in_features:
        raise ValueError(f"{owner}: expected input of shape (*, {in_features}), got {shape_text(x)}")


def shape_text(x: Tensor) -> str:
    """``x``'s shape as it is written in error messages, e.g. ``(2, 3)``."""
    return "(" + ", ".join(str(s) for s in x.shape) + ")"
