"""Tolerances derived from the floating-point type, for comparisons of mathematically equal results.

Rule of the suite: ``torch.equal`` (bitwise) only where the claim is that the *same* computation
repeats (same shapes, same seed, same threads: a resumed run against an uninterrupted one, the
same call twice, a copy or a round trip). Where two results are equal only mathematically --
different batch shapes (matrix products of different shapes take different BLAS blocking paths),
chunked against unchunked, one formula computed two ways -- they may differ in the last bits from
host to host, and :func:`assert_close_ulps` compares them to a few units of ``eps`` of their dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor


def eps_tolerance(dtype: torch.dtype, ulps: float = 8.0) -> dict[str, float]:
    """``{"rtol": ulps * eps, "atol": ulps * eps}`` for ``dtype`` (float32, ulps=8: about 9.5e-7)."""
    eps = torch.finfo(dtype).eps
    return {"rtol": ulps * eps, "atol": ulps * eps}


def assert_close_ulps(actual: Tensor, expected: Tensor, ulps: float = 8.0) -> None:
    """``torch.testing.assert_close`` within ``ulps`` machine epsilons of ``expected``'s dtype.

    Meant for values of order one (the atol is ``ulps * eps`` too): a few roundings per layer of
    a small network, nothing a wrong weight, shape or formula could hide in.
    """
    torch.testing.assert_close(actual, expected, **eps_tolerance(expected.dtype, ulps))
