"""Encoder and decoder networks shared by the VAE, the AE and the Bayesian AE.

An *encoder body* maps images ``(B, C, H, W)`` to features ``(B, F)``; the model puts its own
head on top (stochastic units for a VAE, a linear code for an AE). A *decoder* maps codes
``(B, L)`` to one output per pixel ``(B, C, H, W)`` (Bernoulli logits or Gaussian means).
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

ARCHS = ("mlp", "conv")


def _hidden_sizes(hidden: int | Sequence[int]) -> list[int]:
    sizes = [hidden] if isinstance(hidden, int) else list(hidden)
    if not sizes or any(int(h) < 1 for h in sizes):
        raise ValueError(f"hidden sizes must be positive integers, got {hidden!r}")
    return [int(h) for h in sizes]


def _check_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(image_shape) != 3 or any(int(s) < 1 for s in image_shape):
        raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {tuple(image_shape)}")
    c, h, w = (int(s) for s in image_shape)
    return c, h, w


def mlp_encoder(image_shape: Sequence[int], hidden: int | Sequence[int] = 400) -> tuple[nn.Module, int]:
    """``Flatten -> [Linear -> ReLU] * len(hidden)``: images ``(B, C, H, W)`` -> ``(B, hidden[-1])``.

    Returns the module and its feature size ``F``.
    """
    c, h, w = _check_shape(image_shape)
    sizes = _hidden_sizes(hidden)
    layers: list[nn.Module] = [nn.Flatten()]
    width = c * h * w
    for size in sizes:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers), width


def mlp_decoder(image_shape: Sequence[int], latent: int, hidden: int | Sequence[int] = 400) -> nn.Module:
    """``[Linear -> ReLU] * len(hidden) -> Linear -> Unflatten``: codes ``(B, L)`` -> ``(B, C, H, W)``.

    The hidden sizes are used in reverse order (mirror of :func:`mlp_encoder`); no output
    activation (the caller adds one if it wants means in [0, 1]).
    """
    c, h, w = _check_shape(image_shape)
    if latent < 1:
        raise ValueError(f"latent must be >= 1, got {latent}")
    layers: list[nn.Module] = []
    width = latent
    for size in reversed(_hidden_sizes(hidden)):
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers += [nn.Linear(width, c * h * w), nn.Unflatten(1, (c, h, w))]
    return nn.Sequential(*layers)


def _conv_grid(image_shape: Sequence[int]) -> tuple[int, int, int]:
    c, h, w = _check_shape(image_shape)
    if h % 4 or w % 4:
        raise ValueError(f"the conv architecture needs height and width divisible by 4, got {h}x{w}")
    return c, h // 4, w // 4


def conv_encoder(
    image_shape: Sequence[int], hidden: int = 400, channels: tuple[int, int] = (32, 64)
) -> tuple[nn.Module, int]:
    """Two stride-2 4x4 convolutions (H -> H/4) and a dense layer: ``(B, C, H, W)`` -> ``(B, hidden)``."""
    c, gh, gw = _conv_grid(image_shape)
    (size,) = _hidden_sizes(hidden)
    c1, c2 = channels
    body = nn.Sequential(
        nn.Conv2d(c, c1, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(c1, c2, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(c2 * gh * gw, size),
        nn.ReLU(),
    )
    return body, size


def conv_decoder(
    image_shape: Sequence[int], latent: int, hidden: int = 400, channels: tuple[int, int] = (32, 64)
) -> nn.Module:
    """Mirror of :func:`conv_encoder`: dense layers, then two stride-2 transposed convolutions.

    Codes ``(B, L)`` -> ``(B, C, H, W)``, no output activation.
    """
    c, gh, gw = _conv_grid(image_shape)
    if latent < 1:
        raise ValueError(f"latent must be >= 1, got {latent}")
    (size,) = _hidden_sizes(hidden)
    c1, c2 = channels
    return nn.Sequential(
        nn.Linear(latent, size),
        nn.ReLU(),
        nn.Linear(size, c2 * gh * gw),
        nn.ReLU(),
        nn.Unflatten(1, (c2, gh, gw)),
        nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(c1, c, 4, stride=2, padding=1),
    )


def build_networks(
    arch: str, image_shape: Sequence[int], latent: int, hidden: int | Sequence[int] = 400
) -> tuple[nn.Module, int, nn.Module]:
    """``(encoder_body, feature_size, decoder)`` for ``arch`` in ``ARCHS``."""
    if arch == "mlp":
        body, features = mlp_encoder(image_shape, hidden)
        return body, features, mlp_decoder(image_shape, latent, hidden)
    if arch == "conv":
        if not isinstance(hidden, int):
            raise ValueError(f"the conv architecture takes one hidden size, got {hidden!r}")
        body, features = conv_encoder(image_shape, hidden)
        return body, features, conv_decoder(image_shape, latent, hidden)
    raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
