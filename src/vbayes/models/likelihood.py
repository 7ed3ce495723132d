"""The decoder likelihood p(x | decoder output) shared by the VAE and the AE."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vbayes.losses import LIKELIHOODS, bernoulli_nll, gaussian_log_likelihood


class PixelLikelihood(nn.Module):
    """Independent per-pixel likelihood of images given the decoder output.

    Args:
        kind: ``"bernoulli"`` (decoder output = logits) or ``"gaussian"`` (decoder output = means).
        gaussian_std: fixed standard deviation of the Gaussian (pixel units), or ``None`` to
            learn one scale shared by all pixels, ``softplus(raw) + min_std``, initialised at
            ``init_std``.
        min_std: floor of the learned standard deviation.
        init_std: starting value of the learned standard deviation.
    """

    def __init__(
        self,
        kind: str = "bernoulli",
        gaussian_std: float | None = None,
        min_std: float = 1e-3,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        if kind not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {kind!r}; choose one of {', '.join(LIKELIHOODS)}")
        if gaussian_std is not None and not (gaussian_std > 0 and math.isfinite(gaussian_std)):
            raise ValueError(f"gaussian_std must be a finite number > 0 or None, got {gaussian_std}")
        if kind == "bernoulli" and gaussian_std is not None:
            raise ValueError("gaussian_std applies only to the gaussian likelihood")
        self.kind = kind
        self.fixed_std = gaussian_std
        self.min_std = float(min_std)
        if kind == "gaussian" and gaussian_std is None:
            raw = math.log(math.expm1(init_std - min_std))  # inverse softplus
            self.raw_std: nn.Parameter | None = nn.Parameter(torch.tensor(raw))
        else:
            self.raw_std = None

    @property
    def learned(self) -> bool:
        """True when the Gaussian standard deviation is a parameter."""
        return self.raw_std is not None

    def std(self) -> Tensor | float:
        """Gaussian standard deviation (scalar tensor when learned; float when fixed)."""
        if self.raw_std is not None:
            return F.softplus(self.raw_std) + self.min_std
        if self.fixed_std is None:
            raise ValueError("the bernoulli likelihood has no standard deviation")
        return self.fixed_std

    def log_prob(self, output: Tensor, x: Tensor) -> Tensor:
        """log p(x | output) summed over pixels: ``(B, C, H, W)`` twice -> ``(B,)`` nats."""
        return -self.nll(output, x)

    def nll(self, output: Tensor, x: Tensor) -> Tensor:
        """-log p(x | output) summed over pixels: ``(B, C, H, W)`` twice -> ``(B,)`` nats."""
        if self.kind == "bernoulli":
            if bool(((x < 0) | (x > 1)).any()):
                raise ValueError(f"the bernoulli likelihood needs pixels in [0, 1], got values in "
                                 f"[{float(x.min()):.4g}, {float(x.max()):.4g}]; scale the images or use "
                                 "likelihood='gaussian'")  # fmt: skip
            return bernoulli_nll(output, x)
        return -gaussian_log_likelihood(output, x, self.std())

    def mean(self, output: Tensor) -> Tensor:
        """Mean image E[x | output]: ``sigmoid(logits)`` or the Gaussian means, ``(B, C, H, W)``."""
        return torch.sigmoid(output) if self.kind == "bernoulli" else output

    def extra_repr(self) -> str:
        std = "learned" if self.learned else self.fixed_std
        return f"kind={self.kind!r}" + (f", std={std}" if self.kind == "gaussian" else "")


def check_images(x: object, image_shape: tuple[int, ...], who: str) -> None:
    """Raise ``ValueError`` naming the expected shape unless ``x`` is a ``(B, *image_shape)`` tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: expected a tensor of images (B, {', '.join(map(str, image_shape))}), "
                        f"got {type(x).__name__}")
    if x.dim() != len(image_shape) + 1 or tuple(x.shape[1:]) != tuple(image_shape):
        raise ValueError(f"{who}: expected images of shape (B, {', '.join(map(str, image_shape))}), "
                         f"got {tuple(x.shape)}")
