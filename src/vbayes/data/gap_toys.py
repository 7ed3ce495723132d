"""The two toys of Yao, Pan, Ghosh & Doshi-Velez (2019)'s figures, rebuilt from their plots.

The paper's generators are not published; these follow what its figures show (see
``shared/METHODS.md``): inputs in clusters with a gap between them, a known curve, Gaussian noise
of a stated level, fixed seeds.

``cubic-gap``: ``y = 0.1 x^3 + N(0, 0.3^2)``, 25 training inputs uniform on each of [-4, -1] and
[1, 4]; 200 test inputs uniform on [-4.2, 4.2] (the gap included, so test LL sees it).

``wiggle-gap``: ``y = 1.2 x sin(0.4 pi (0.25 - x)) + N(0, 0.3^2)`` (a stand-in with the figure's
features: a bump near -0.5, a dip near 1.5, a peak near 4 and a swing down towards 6; not the
paper's own curve), 20 training inputs uniform on [-3.2, -1.9], two near -1 (-1.1 and -0.9) and
28 uniform on [2, 5]; 200 test inputs uniform on [-6, 6].

Both have ``meta["gap_middle"]`` (where the in-gap epistemic ratio is read), ``meta["gap"]`` (the
gap's interval), ``meta["extrapolation"]`` (-6 and 6: out of the data on both sides) and
``meta["noise_std"]``; ``x_grid`` is 200 points on the test range.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from vbayes.data.tabular import RegressionData

CUBIC_GAP_NOISE = 0.3
WIGGLE_GAP_NOISE = 0.3
GRID_POINTS = 200


def cubic_gap_function(x: Tensor) -> Tensor:
    """``0.1 x^3`` (same shape as ``x``)."""
    return 0.1 * x**3


def wiggle_gap_function(x: Tensor) -> Tensor:
    """``1.2 x sin(0.4 pi (0.25 - x))`` (same shape as ``x``)."""
    return 1.2 * x * torch.sin(0.4 * math.pi * (0.25 - x))


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def _toy(name: str, x_tr: Tensor, x_te: Tensor, fn: Callable[[Tensor], Tensor], noise: float, grid: tuple[float, float],
         gap: tuple[float, float], gen: torch.Generator) -> RegressionData:
    y_tr = fn(x_tr) + noise * torch.randn(x_tr.shape[0], generator=gen)
    y_te = fn(x_te) + noise * torch.randn(x_te.shape[0], generator=gen)
    meta = {"gap": list(gap), "gap_middle": 0.5 * (gap[0] + gap[1]), "extrapolation": [-6.0, 6.0],
            "noise_std": noise}
    x_grid = torch.linspace(grid[0], grid[1], GRID_POINTS)[:, None]
    return RegressionData(name, x_tr[:, None], y_tr, x_te[:, None], y_te, x_grid, meta).validate()


def load_cubic_gap(seed: int = 0, data_dir: object = None) -> RegressionData:
    """``cubic-gap`` (module docstring): 50 training and 200 test points from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    x_tr = torch.cat([_uniform(25, -4.0, -1.0, gen), _uniform(25, 1.0, 4.0, gen)])
    x_te = _uniform(200, -4.2, 4.2, gen)
    return _toy("cubic-gap", x_tr, x_te, cubic_gap_function, CUBIC_GAP_NOISE, (-4.2, 4.2), (-1.0, 1.0), gen)


def load_wiggle_gap(seed: int = 0, data_dir: object = None) -> RegressionData:
    """``wiggle-gap`` (module docstring): 50 training and 200 test points from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    x_tr = torch.cat([_uniform(20, -3.2, -1.9, gen), torch.tensor([-1.1, -0.9]), _uniform(28, 2.0, 5.0, gen)])
    x_te = _uniform(200, -6.0, 6.0, gen)
    return _toy("wiggle-gap", x_tr, x_te, wiggle_gap_function, WIGGLE_GAP_NOISE, (-6.0, 6.0), (-0.9, 2.0), gen)
