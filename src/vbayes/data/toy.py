"""Toy data generated from a seed: a 1-D regression with a gap, the cubic toy, two moons.

All generators use a private ``torch.Generator`` (or NumPy ``RandomState`` for scikit-learn's
moons), so the same seed gives the same data on every run.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vbayes.data.tabular import ClassificationData, RegressionData

GAP_CLUSTERS = ((-3.0, -1.5), (1.5, 3.0))
GAP_NOISE = 0.1


def gap_function(x: Tensor) -> Tensor:
    """The noiseless toy-gap curve ``sin(x) + 0.3 x`` (same shape as ``x``)."""
    return torch.sin(x) + 0.3 * x


def _gap_inputs(n: int, generator: torch.Generator) -> Tensor:
    (a0, a1), (b0, b1) = GAP_CLUSTERS
    half = n // 2
    left = a0 + (a1 - a0) * torch.rand(half, generator=generator)
    right = b0 + (b1 - b0) * torch.rand(n - half, generator=generator)
    return torch.cat([left, right])[:, None]


def load_toy_gap(seed: int = 0, n_train: int = 40, n_test: int = 200, data_dir: object = None) -> RegressionData:
    """1-D regression with a gap: inputs uniform on two clusters [-3, -1.5] and [1.5, 3],
    nothing between; ``y = sin(x) + 0.3 x + N(0, 0.1^2)``.

    Test inputs are fresh draws from the same clusters; ``x_grid`` reaches 0.6 of the data's
    span past each edge, for plotting. ``meta`` holds ``gap`` ([-1.5, 1.5]), ``gap_middle`` (0.0) and
    ``extrapolation``: the two inputs half the data's span past its edges (about -6 and 6).
    """
    if n_train < 2:
        from vbayes.errors import DataError

        raise DataError(f"toy-gap: need at least 2 training points, got {n_train}")
    gen = torch.Generator().manual_seed(seed)
    x_tr = _gap_inputs(n_train, gen)
    y_tr = gap_function(x_tr[:, 0]) + GAP_NOISE * torch.randn(n_train, generator=gen)
    x_te = _gap_inputs(n_test, gen)
    y_te = gap_function(x_te[:, 0]) + GAP_NOISE * torch.randn(n_test, generator=gen)
    lo, hi = float(x_tr.min()), float(x_tr.max())
    span = hi - lo
    meta = {
        "gap": [GAP_CLUSTERS[0][1], GAP_CLUSTERS[1][0]],
        "gap_middle": 0.5 * (GAP_CLUSTERS[0][1] + GAP_CLUSTERS[1][0]),
        "extrapolation": [lo - 0.5 * span, hi + 0.5 * span],
        "noise_std": GAP_NOISE,
    }
    grid = torch.linspace(lo - 0.6 * span, hi + 0.6 * span, 400)[:, None]
    return RegressionData("toy-gap", x_tr, y_tr, x_te, y_te, grid, meta).validate()


def load_cubic(seed: int = 0, n_train: int = 20, n_test: int = 200, data_dir: object = None) -> RegressionData:
    """The cubic toy of Hernández-Lobato & Adams (2015): x uniform on [-4, 4], ``y = x^3 + N(0, 3^2)``.

    20 training points by default; test points are fresh draws on [-4, 4]; ``x_grid`` spans
    [-6, 6] as in the paper's figure.
    """
    if n_train < 2:
        from vbayes.errors import DataError

        raise DataError(f"cubic: need at least 2 training points, got {n_train}")
    gen = torch.Generator().manual_seed(seed)

    def draw(n: int) -> tuple[Tensor, Tensor]:
        x = -4.0 + 8.0 * torch.rand(n, 1, generator=gen)
        return x, x[:, 0] ** 3 + 3.0 * torch.randn(n, generator=gen)

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    grid = torch.linspace(-6.0, 6.0, 400)[:, None]
    return RegressionData("cubic", x_tr, y_tr, x_te, y_te, grid, {"noise_std": 3.0}).validate()


def moons_ood(n: int, x_train: Tensor, generator: torch.Generator, min_dist: float = 1.0) -> Tensor:
    """``(n, 2)`` points uniform on [-4, 5] x [-3.5, 4] at distance >= ``min_dist`` from every
    training input (out of distribution for two moons)."""
    out: list[Tensor] = []
    total = 0
    while total < n:
        cand = torch.rand(4 * n, 2, generator=generator) * torch.tensor([9.0, 7.5]) + torch.tensor([-4.0, -3.5])
        keep = cand[torch.cdist(cand, x_train).min(1).values >= min_dist]
        out.append(keep)
        total += len(keep)
    return torch.cat(out)[:n]


def cubic_standardised(seed: int = 0) -> tuple[Tensor, Tensor]:
    """The 20-point cubic toy's training set, inputs ``(20, 1)`` and targets ``(20,)``, each
    standardised by its own mean and (unbiased) std: the problem of the MCMC benchmarks."""
    data = load_cubic(seed=seed)
    x, y = data.x_train, data.y_train
    return (x - x.mean(0)) / x.std(0), (y - y.mean()) / y.std()


def load_moons(seed: int = 0, n_train: int = 200, n_test: int = 500, noise: float = 0.1, data_dir: object = None) -> ClassificationData:
    """Two moons (scikit-learn ``make_moons``, noise 0.1) with 2 classes; ``x_ood['far']``
    holds ``n_test`` points at least 1.0 away from every training input."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_train + n_test, noise=noise, random_state=np.random.RandomState(seed))
    x_t = torch.as_tensor(x, dtype=torch.float32)
    y_t = torch.as_tensor(y, dtype=torch.int64)
    gen = torch.Generator().manual_seed(seed + 1)
    ood = moons_ood(n_test, x_t[:n_train], gen)
    return ClassificationData(
        "moons", x_t[:n_train], y_t[:n_train], x_t[n_train:], y_t[n_train:], 2, {"far": ood}
    ).validate()
