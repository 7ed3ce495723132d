"""Out-of-distribution inputs made from an image test set: uniform noise, inverted and rotated digits."""

from __future__ import annotations

import torch
from torch import Tensor

from vbayes.data.tabular import ClassificationData


def uniform_noise(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Images of i.i.d. uniform [0, 1] pixels with the shape of ``x`` ``(N, C, H, W)``."""
    return torch.rand(x.shape, generator=generator, dtype=x.dtype)


def inverted(x: Tensor) -> Tensor:
    """Photographic negatives ``1 - x`` of images in [0, 1], shape ``(N, C, H, W)``."""
    return 1.0 - x


def rotated(x: Tensor, quarter_turns: int = 1) -> Tensor:
    """Images rotated by ``90 * quarter_turns`` degrees (exact, no interpolation), ``(N, C, H, W)``."""
    return torch.rot90(x, quarter_turns, dims=(-2, -1))


def ood_sets(x_test: Tensor, seed: int = 0) -> dict[str, Tensor]:
    """The three OOD sets, each ``(N, C, H, W)`` like ``x_test``: ``noise`` (seeded), ``inverted``
    and ``rotated`` (90 degrees; a rotated 0/1/8 can look in-distribution, which lowers AUROC
    honestly rather than by construction)."""
    gen = torch.Generator().manual_seed(seed)
    return {"noise": uniform_noise(x_test, gen), "inverted": inverted(x_test), "rotated": rotated(x_test)}


def load_image_classification(name: str, seed: int = 0, data_dir: object = None) -> ClassificationData:
    """An image data set from the registry as flat vectors with its OOD sets.

    Returns a :class:`~vbayes.data.tabular.ClassificationData` with ``(N, C*H*W)`` inputs,
    training on the train split (the validation split is not used) and ``x_ood`` from
    :func:`ood_sets` on the test split.
    """
    from vbayes.data.registry import load

    images = load(name, data_dir=data_dir)
    flat = lambda t: t.reshape(len(t), -1)  # noqa: E731
    ood = {k: flat(v) for k, v in ood_sets(images.x_test, seed).items()}
    return ClassificationData(
        name, flat(images.x_train), images.y_train, flat(images.x_test), images.y_test,
        images.n_classes, ood, images.image_shape,
    ).validate()
