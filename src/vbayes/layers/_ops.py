"""The deterministic operations that Bayesian layers wrap: linear, conv and transposed conv.

Each class fixes the parameter shapes, the operation ``_op(x, weight, bias)``, the input check
and the shapes of Flipout's per-example sign vectors. Constructor arguments mirror
``torch.nn.Linear`` / ``ConvNd`` / ``ConvTransposeNd``; estimators live in reparam.py,
flipout.py and lrt.py.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _ntuple, _reverse_repeat_tuple

from vbayes.layers._fused import flip_signs
from vbayes.layers._variational import DEFAULT_POSTERIOR_STD, VariationalLayer
from vbayes.layers.base import check_conv_channels, check_features_input, check_positive_ints, shape_text

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


class LinearLayer(VariationalLayer):
    """y = x W^T + b with W ``(out_features, in_features)``; input ``(*, in_features)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, prior: Any = None,
                 posterior_std_init: float = DEFAULT_POSTERIOR_STD, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        check_positive_ints(name, in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        self._init_posterior((out_features, in_features), out_features if bias else None, in_features,
                             prior, posterior_std_init, device, dtype)

    def _op(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, weight, bias)

    def _check_input(self, x: Tensor) -> None:
        check_features_input(type(self).__name__, x, self.in_features)

    def _sign_shapes(self, x: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
        lead = tuple(x.shape[:-1])
        return lead + (self.in_features,), lead + (self.out_features,)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias_mu is not None}, prior={self.prior!r}")


class _ConvBase(VariationalLayer):
    """Shared constructor of (transposed) convolutions in ``_dims`` spatial dimensions."""

    _dims = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", output_padding: Any = 0, *, prior: Any = None,
                 posterior_std_init: float = DEFAULT_POSTERIOR_STD, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        check_conv_channels(name, in_channels, out_channels, groups)
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"{name}: unknown padding_mode {padding_mode!r}")
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported for transposed convolutions")
        tup = _ntuple(self._dims)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = tup(kernel_size), tup(stride), tup(dilation)
        if isinstance(padding, str):
            if padding not in ("same", "valid") or self._transposed:
                raise ValueError(f"{name}: padding must be an int, a tuple or 'same'/'valid', got {padding!r}")
            self.padding: Any = padding
        else:
            self.padding = tup(padding)
        self.output_padding = tup(output_padding)
        self.padding_mode = padding_mode
        if padding_mode != "zeros":
            pad = self.padding
            if isinstance(pad, str):
                raise ValueError(f"{name}: padding_mode {padding_mode!r} needs a numeric padding")
            self._pad_twice = _reverse_repeat_tuple(pad, 2)
        if self._transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
            fan_in = shape[1] * _prod(self.kernel_size)  # as torch.nn.ConvTranspose does
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
            fan_in = shape[1] * _prod(self.kernel_size)
        self._init_posterior(shape, out_channels if bias else None, fan_in, prior,
                             posterior_std_init, device, dtype)

    def _op(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if self._transposed:
            return _CONV_T[self._dims](x, weight, bias, self.stride, self.padding, self.output_padding,
                                       self.groups, self.dilation)
        if self.padding_mode != "zeros":
            x = F.pad(x, self._pad_twice, mode=self.padding_mode)
            return _CONV[self._dims](x, weight, bias, self.stride, 0, self.dilation, self.groups)
        return _CONV[self._dims](x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def _check_input(self, x: Tensor) -> None:
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
        spatial = ", ".join("L" if self._dims == 1 else s for s in ("H", "W", "D")[: self._dims])
        d = self._dims
        if x.dim() not in (d + 1, d + 2) or x.shape[-d - 1] != self.in_channels:
            raise ValueError(f"{name}: expected input of shape (N, {self.in_channels}, {spatial}) or "
                             f"({self.in_channels}, {spatial}), got {shape_text(x)}")

    def _sign_shapes(self, x: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
        ones = (1,) * self._dims
        lead = tuple(x.shape[: x.dim() - self._dims - 1])
        return lead + (self.in_channels,) + ones, lead + (self.out_channels,) + ones

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, padding={self.padding}")
        if self._transposed and any(self.output_padding):
            s += f", output_padding={self.output_padding}"
        if any(d != 1 for d in self.dilation):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s + f", bias={self.bias_mu is not None}, prior={self.prior!r}"


def _prod(values: tuple[int, ...]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


class Conv1dLayer(_ConvBase):
    """1-d convolution; weight ``(out, in / groups, k)``; input ``(N, C_in, L)``."""

    _dims = 1


class Conv2dLayer(_ConvBase):
    """2-d convolution; weight ``(out, in / groups, kH, kW)``; input ``(N, C_in, H, W)``."""

    _dims = 2


class _ConvTransposeBase(_ConvBase):
    """Transposed convolution with ``torch.nn.ConvTransposeNd``'s positional argument order."""

    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", *, prior: Any = None,
                 posterior_std_init: float = DEFAULT_POSTERIOR_STD, device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode,
                         output_padding=output_padding, prior=prior, posterior_std_init=posterior_std_init,
                         device=device, dtype=dtype)


class ConvTranspose1dLayer(_ConvTransposeBase):
    """1-d transposed convolution; weight ``(in, out / groups, k)``; input ``(N, C_in, L)``."""

    _dims = 1


class ConvTranspose2dLayer(_ConvTransposeBase):
    """2-d transposed convolution; weight ``(in, out / groups, kH, kW)``; input ``(N, C_in, H, W)``."""

    _dims = 2


def sign_vectors(layer: VariationalLayer, x: Tensor) -> tuple[Tensor, Tensor]:
    """Flipout's random signs for ``x``: per example and input / output feature (or channel)."""
    shape_in, shape_out = layer._sign_shapes(x)  # type: ignore[attr-defined]
    n_in, n_out = _prod(shape_in), _prod(shape_out)
    signs = flip_signs(n_in + n_out, x.dtype, x.device, layer.generator)
    return signs[:n_in].view(shape_in), signs[n_in:].view(shape_out)


__all__ = ["LinearLayer", "Conv1dLayer", "Conv2dLayer", "ConvTranspose1dLayer", "ConvTranspose2dLayer",
           "sign_vectors"]
