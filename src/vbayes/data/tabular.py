"""Containers for tabular (vector-input) data sets and the standardisation used by the UQ pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from vbayes.errors import DataError


@dataclass
class RegressionData:
    """A regression data set with a train / test split, on the original scale.

    Attributes:
        name: data set name.
        x_train, x_test: ``(N, D)`` float32 inputs.
        y_train, y_test: ``(N,)`` float32 targets.
        x_grid: optional ``(G, D)`` inputs for plotting predictive bands (1-D toys only).
        meta: extra facts (e.g. the gap's clusters, the protocol's hidden width).
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    x_grid: Tensor | None = None
    meta: dict = field(default_factory=dict)

    def validate(self) -> "RegressionData":
        """Raise :class:`DataError` for < 2 training points, mismatched shapes or non-finite values."""
        check_xy(self.name, "train", self.x_train, self.y_train)
        check_xy(self.name, "test", self.x_test, self.y_test)
        return self


@dataclass
class ClassificationData:
    """A classification data set with test and out-of-distribution inputs.

    Attributes:
        name: data set name.
        x_train, x_test: ``(N, D)`` float32 inputs (images flattened).
        y_train, y_test: ``(N,)`` int64 labels in ``[0, n_classes)``.
        n_classes: number of classes C.
        x_ood: named ``(M, D)`` out-of-distribution input sets.
        image_shape: ``(C, H, W)`` for image data, else ``None``.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    n_classes: int
    x_ood: dict[str, Tensor] = field(default_factory=dict)
    image_shape: tuple[int, int, int] | None = None

    def validate(self) -> "ClassificationData":
        """Raise :class:`DataError` for < 2 training points, mismatched shapes or non-finite inputs."""
        check_xy(self.name, "train", self.x_train, self.y_train)
        check_xy(self.name, "test", self.x_test, self.y_test)
        return self


def check_xy(name: str, part: str, x: Tensor, y: Tensor) -> None:
    """One-line :class:`DataError` for a bad ``(N, D)`` / ``(N,)`` pair."""
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DataError(f"{name}: {part} inputs {tuple(x.shape)} and targets {tuple(y.shape)} do not match as (N, D) and (N,)")
    if part == "train" and x.shape[0] < 2:
        raise DataError(f"{name}: need at least 2 training points, got {x.shape[0]}")
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{name}: {int((~torch.isfinite(x)).sum())} non-finite {part} inputs")
    if y.is_floating_point() and not bool(torch.isfinite(y).all()):
        raise DataError(f"{name}: {int((~torch.isfinite(y)).sum())} non-finite {part} targets")


@dataclass
class Standardizer:
    """Affine standardisation fitted on a training split: ``(x - mean) / std``.

    Attributes:
        mean, std: ``(D,)`` for inputs or ``()`` for a target; a zero std is replaced by 1
        (constant columns stay constant, as in Gal's UCI code).
    """

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, values: Tensor) -> "Standardizer":
        """Statistics over the first axis of ``values`` (``(N, D)`` or ``(N,)``), population std."""
        mean = values.double().mean(0)
        std = values.double().std(0, unbiased=False)
        std = torch.where(std > 0, std, torch.ones_like(std))
        return cls(mean, std)

    def transform(self, values: Tensor) -> Tensor:
        """Standardised float32 copy of ``values``."""
        return ((values.double() - self.mean) / self.std).float()

    def inverse(self, values: Tensor) -> Tensor:
        """Values back on the original scale (float64)."""
        return values.double() * self.std + self.mean
