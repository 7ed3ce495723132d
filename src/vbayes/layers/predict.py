"""Monte-Carlo predictive samples of a Bayesian model."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["predict"]


def _fields(result: Any, output: int | str | None) -> tuple[list[Tensor], Callable[[Sequence[Tensor]], Any]]:
    """The tensors of one model output and a function that puts tensors back into its form."""
    if output is not None:
        if isinstance(output, str):
            if not hasattr(result, output):
                raise TypeError(f"predict: output={output!r}, but the model's {type(result).__name__} has no such field")
            chosen = getattr(result, output)
        elif isinstance(output, int) and not isinstance(output, bool) and isinstance(result, tuple):
            if not -len(result) <= output < len(result):
                raise TypeError(f"predict: output={output}, but the model returns {len(result)} values")
            chosen = result[output]
        else:
            raise TypeError(f"predict: output must be a field name or an index into a returned tuple, got {output!r}")
        if not isinstance(chosen, Tensor):
            raise TypeError(f"predict: output={output!r} selects a {type(chosen).__name__}, not a Tensor")
        return [chosen], lambda tensors: tensors[0]
    if isinstance(result, Tensor):
        return [result], lambda tensors: tensors[0]
    if isinstance(result, tuple) and result and all(isinstance(t, Tensor) for t in result):
        make = getattr(type(result), "_make", None)  # a named tuple keeps its type and field names
        return list(result), (make if make is not None else tuple)
    raise TypeError(f"predict: the model must return a Tensor or a tuple of Tensors, got {type(result).__name__} "
                    "(pick one field with output=)")  # fmt: skip


@torch.no_grad()
def predict(
    model: nn.Module, x: Tensor, n_samples: int, reduce: bool = False, output: int | str | None = None
) -> Any:
    """Run ``model`` on ``x`` ``n_samples`` times (fresh posterior noise each time).

    Args:
        model: a module returning a Tensor of shape ``(B, ...)``, or a tuple / named tuple of
            such Tensors (e.g. :class:`~vbayes.models.VAEOutput`).
        x: input batch.
        n_samples: number of posterior draws S >= 1.
        reduce: return ``(mean, var)`` over the draws instead of the draws.
        output: with a tuple-returning model, predict only this field: a name (``"output"``
            of a ``VAEOutput``) or an index; the result is then that of a Tensor model.

    Returns:
        For a Tensor output: ``(S, B, ...)`` samples, or ``(mean, var)`` each ``(B, ...)``;
        ``var`` is the unbiased sample variance (0 when S == 1). For a tuple output every field
        is predicted so: the samples are a tuple of the same type (a named tuple keeps its
        fields) holding ``(S, B, ...)`` per field, and ``(mean, var)`` are two such tuples.
        Runs under ``torch.no_grad``; the model's train/eval mode is left as it is.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"predict: n_samples must be a positive int, got {n_samples!r}")
    firsts, rebuild = _fields(model(x), output)

    def draw() -> list[Tensor]:
        fields, _ = _fields(model(x), output)
        return fields

    if not reduce:
        outs = [first.new_empty((n_samples,) + tuple(first.shape)) for first in firsts]
        for out, first in zip(outs, firsts):
            out[0] = first
        for s in range(1, n_samples):
            for out, y in zip(outs, draw()):
                out[s] = y
        return rebuild(outs)
    # Welford's running mean and variance: memory of one output, numerically stable
    means = [first.clone() for first in firsts]
    m2s = [torch.zeros_like(first) for first in firsts]
    for s in range(1, n_samples):
        for mean, m2, y in zip(means, m2s, draw()):
            delta = y - mean
            mean.add_(delta, alpha=1.0 / (s + 1))
            m2.addcmul_(delta, y - mean)
    variances = [m2 / (n_samples - 1) if n_samples > 1 else m2 for m2 in m2s]
    return rebuild(means), rebuild(variances)
