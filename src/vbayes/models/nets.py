"""The network builders: :func:`mlp` (the one MLP builder) and the encoder and decoder networks
shared by the VAE, the AE and the Bayesian AE.

An *encoder body* maps images ``(B, C, H, W)`` to features ``(B, F)``; the model puts its own
head on top (stochastic units for a VAE, a linear code for an AE). A *decoder* maps codes
``(B, L)`` to one output per pixel ``(B, C, H, W)`` (Bernoulli logits or Gaussian means).
"""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from vbayes.errors import VBayesError

ARCHS = ("mlp", "conv")


def activation_module(name: str) -> nn.Module:
    """``nn.Module`` for an activation name: ``relu``, ``tanh``, ``gelu`` or ``elu``."""
    table: dict[str, Callable[[], nn.Module]] = {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
        "elu": nn.ELU,
    }
    if name not in table:
        raise VBayesError(f"unknown activation {name!r}; choose one of: {', '.join(table)}")
    return table[name]()


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    *,
    activation: str = "relu",
    dropout: float = 0.0,
    input_dropout: bool = False,
    linear: Callable[[int, int], nn.Module] = nn.Linear,
    final_activation: bool = False,
) -> nn.Sequential:
    """A multi-layer perceptron ``in -> hidden... -> out`` built from ``linear(fan_in, fan_out)``.

    With ``dropout > 0`` an ``nn.Dropout`` follows every hidden activation (MC dropout keeps it
    active at prediction time), and with ``input_dropout`` one comes first, on the inputs (as in
    Gal & Ghahramani's UCI networks); ``final_activation`` puts the activation after the output
    layer too (an encoder body). Input ``(B, in_features)``, output ``(B, out_features)``. The one
    MLP builder of vbayes: the inference methods, the auto-encoders' MLP networks, the digit
    classifier and the benchmarks use it.
    """
    layers: list[nn.Module] = [nn.Dropout(dropout)] if input_dropout and dropout > 0 else []
    width = in_features
    for h in hidden:
        layers.append(linear(width, h))
        layers.append(activation_module(activation))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(linear(width, out_features))
    if final_activation:
        layers.append(activation_module(activation))
    return nn.Sequential(*layers)


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
    return nn.Sequential(nn.Flatten(), *mlp(c * h * w, sizes[:-1], sizes[-1], final_activation=True)), sizes[-1]


def mlp_decoder(image_shape: Sequence[int], latent: int, hidden: int | Sequence[int] = 400) -> nn.Module:
    """``[Linear -> ReLU] * len(hidden) -> Linear -> Unflatten``: codes ``(B, L)`` -> ``(B, C, H, W)``.

    The hidden sizes are used in reverse order (mirror of :func:`mlp_encoder`); no output
    activation (the caller adds one if it wants means in [0, 1]).
    """
    c, h, w = _check_shape(image_shape)
    if latent < 1:
        raise ValueError(f"latent must be >= 1, got {latent}")
    return nn.Sequential(*mlp(latent, list(reversed(_hidden_sizes(hidden))), c * h * w), nn.Unflatten(1, (c, h, w)))


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
