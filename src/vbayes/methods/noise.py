"""The observation-noise model of every regression method: raw network outputs -> ``(mu, sigma)``.

One set of option names and meanings for all regression methods (``output``, ``bbb``,
``flipout``, ``lrt``, ``dropout``, ``ensemble``, ``sgld``; ``hmc`` samples the noise instead and
takes ``homoscedastic`` and ``fixed``):

* ``noise="heteroscedastic"``: the network has 2 outputs, ``sigma(x) = softplus(raw(x) + c) +
  MIN_SIGMA`` with the offset ``c`` chosen so that a raw output of 0 gives ``noise_std``;
* ``noise="homoscedastic"``: 1 output and one learned ``log_sigma`` shared by all inputs,
  starting at ``noise_std``;
* ``noise="fixed"``: 1 output and ``sigma = noise_std`` exactly (a known noise level).

``noise_std`` is in the units of the targets given to ``fit`` (``vbayes uq`` converts its
``--noise-std``, given in the data's units, to the standardised targets); ``None`` starts the
learned kinds at :data:`DEFAULT_NOISE_STD` and is an error for ``fixed``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vbayes.errors import VBayesError

NOISE_KINDS = ("heteroscedastic", "homoscedastic", "fixed")
MIN_SIGMA = 1e-3
"""Floor on a learned noise std (targets' units), against a collapse onto single points."""
DEFAULT_NOISE_STD = 0.5
"""Initial noise std of the learned kinds when ``noise_std`` is None (standardised targets)."""


def check_noise(noise: str, noise_std: float | None, owner: str) -> float | None:
    """Validate a ``(noise, noise_std)`` pair; returns ``noise_std`` as a float (or None)."""
    if noise not in NOISE_KINDS:
        raise VBayesError(f"{owner}: unknown noise {noise!r}; choose one of: {', '.join(NOISE_KINDS)}")
    if noise_std is None:
        if noise == "fixed":
            raise VBayesError(f"{owner}: noise='fixed' needs noise_std (the known noise std)")
        return None
    try:
        value = float(noise_std)
    except (TypeError, ValueError):
        raise VBayesError(f"{owner}: noise_std must be a number, got {noise_std!r}") from None
    floor = 0.0 if noise == "fixed" else MIN_SIGMA
    if not (math.isfinite(value) and value > floor):
        raise VBayesError(f"{owner}: noise_std must be a finite number > {floor:g}, got {noise_std!r}")
    return value


class NoiseModel(nn.Module):
    """Gaussian observation noise of a regression network (see the module docstring).

    Args:
        noise: ``heteroscedastic``, ``homoscedastic`` or ``fixed``.
        noise_std: the fixed std, or the initial one of the learned kinds (None: 0.5).
    """

    def __init__(self, noise: str = "heteroscedastic", noise_std: float | None = None) -> None:
        super().__init__()
        value = check_noise(noise, noise_std, "noise")
        std = DEFAULT_NOISE_STD if value is None else value
        self.noise = noise
        self.log_sigma: nn.Parameter | None = None
        if noise == "homoscedastic":
            self.log_sigma = nn.Parameter(torch.tensor(math.log(std - MIN_SIGMA)))
        offset = std - MIN_SIGMA + math.log(-math.expm1(-(std - MIN_SIGMA))) if noise == "heteroscedastic" else 0.0
        self.offset = float(offset)  # softplus(offset) + MIN_SIGMA == std
        self.fixed_std = float(std)

    @property
    def n_outputs(self) -> int:
        """Width of the network output this model expects: 2 (heteroscedastic) or 1."""
        return 2 if self.noise == "heteroscedastic" else 1

    def forward(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """``out`` ``(..., n_outputs)`` -> ``(mu, sigma)``, each ``(...)``, targets' units."""
        mu = out[..., 0]
        if self.noise == "heteroscedastic":
            sigma = F.softplus(out[..., 1] + self.offset) + MIN_SIGMA
        elif self.log_sigma is not None:
            sigma = (self.log_sigma.exp() + MIN_SIGMA).expand_as(mu)
        else:
            sigma = torch.full_like(mu, self.fixed_std)
        return mu, sigma
