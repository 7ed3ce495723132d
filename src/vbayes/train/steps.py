"""Per-step helpers of the trainer: input checks, per-epoch shuffling, metric accumulation."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from vbayes.errors import DataError


def check_tensors(tensors: Sequence[Tensor], what: str) -> tuple[Tensor, ...]:
    """``tensors`` as a tuple after checking it is a non-empty data set.

    Every element must be a tensor with the same first dimension N >= 1, and floating tensors
    must be finite. Raises :class:`~vbayes.errors.DataError` naming ``what`` (e.g. "training")
    and the offending tensor otherwise.
    """
    if isinstance(tensors, Tensor) or not isinstance(tensors, (tuple, list)) or len(tensors) == 0:
        raise DataError(f"{what} data must be a non-empty tuple of tensors, got {type(tensors).__name__}")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise DataError(f"{what} data: element {i} is a {type(t).__name__}, not a tensor")
        if t.dim() == 0:
            raise DataError(f"{what} data: tensor {i} is a scalar; expected a first (example) dimension")
    n = tensors[0].shape[0]
    if n == 0:
        raise DataError(f"{what} data is empty (0 examples)")
    for i, t in enumerate(tensors):
        if t.shape[0] != n:
            raise DataError(f"{what} data: tensor {i} has {t.shape[0]} examples but tensor 0 has {n}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise DataError(f"{what} data: tensor {i} contains NaN or infinite values")
    return tuple(tensors)


def epoch_permutation(n: int, seed: int, epoch: int, generator: torch.Generator) -> Tensor:
    """The shuffled order of ``n`` examples for ``epoch``: (n,) int64, a function of (seed, epoch).

    ``generator`` is re-seeded every epoch, as ``DistributedSampler`` does, so every rank draws
    the same permutation and a resumed run draws the one an uninterrupted run would have.
    """
    generator.manual_seed((seed * 1_000_003 + epoch) % 2**63)
    return torch.randperm(n, generator=generator)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


class EpochAccumulator:
    """Example-weighted sums of the loss and logs over one epoch, kept on the device.

    Storing each step's loss in a preallocated buffer avoids a host-device sync per step; the
    sums are formed (and all-reduced across ranks) once, in :meth:`reduce`.
    """

    def __init__(self, n_steps: int, device: torch.device) -> None:
        self.device = device
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.losses = torch.zeros(n_steps, dtype=self.dtype, device=device)
        self.counts = [0] * n_steps
        self.tensor_logs: dict[str, Tensor] = {}
        self.float_logs: dict[str, float] = {}
        self.used = 0

    def add(self, i: int, loss: Tensor, logs: dict[str, Any], n: int) -> None:
        """Record step ``i``: mean ``loss`` over its ``n`` examples (n=0: a padding step) and ``logs``."""
        self.losses[i] = loss.detach()
        self.counts[i] = n
        self.used = i + 1
        for key, value in logs.items():
            if isinstance(value, Tensor):
                buf = self.tensor_logs.get(key)
                if buf is None:
                    buf = self.tensor_logs[key] = torch.zeros_like(self.losses)
                buf[i] = value.detach().reshape(())
            else:
                self.float_logs[key] = self.float_logs.get(key, 0.0) + (float(value) * n if n else 0.0)

    def _counts(self) -> Tensor:
        return torch.tensor(self.counts[: self.used], dtype=self.dtype).to(self.device, non_blocking=True)

    def running_mean(self, i: int) -> float:
        """Mean loss over steps ``0..i`` of this rank (one device sync; for the progress bar)."""
        counts = self._counts()[: i + 1]
        return float((self.losses[: i + 1] * counts).sum() / counts.sum().clamp_min(1))

    def _first_nonfinite(self) -> tuple[int, float] | None:
        bad = torch.nonzero(~torch.isfinite(self.losses[: self.used])).flatten()
        if bad.numel() == 0:
            return None
        step = int(bad[0])
        return step, float(self.losses[step])

    def reduce(self) -> tuple[float, dict[str, float], tuple[int, float] | None]:
        """Pooled over all ranks: the example-weighted mean loss, the mean logs, and the first
        non-finite loss as ``(step index, value)`` (None when every loss was finite).

        Costs one ``all_gather_object`` (log keys, non-finite steps) and one ``all_reduce``.
        """
        keys = sorted(set(self.tensor_logs) | set(self.float_logs))
        bad = self._first_nonfinite()
        if _distributed():
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, (keys, bad))
            keys = sorted(set().union(*(k for k, _ in gathered)))
            flagged = [b for _, b in gathered if b is not None]
            bad = min(flagged) if flagged else None
        counts = self._counts()

        def weighted_sum(values: Tensor) -> Tensor:  # padding steps (count 0) add exactly 0
            return torch.where(counts > 0, values[: self.used] * counts, 0.0).sum()

        sums = [weighted_sum(self.losses), counts.sum()]
        for key in keys:
            total = torch.zeros((), dtype=self.dtype, device=self.device) + self.float_logs.get(key, 0.0)
            if key in self.tensor_logs:
                total = total + weighted_sum(self.tensor_logs[key])
            sums.append(total)
        packed = torch.stack([s.to(self.dtype) for s in sums])
        if _distributed():
            dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        values = packed.tolist()
        n = max(values[1], 1.0)
        return values[0] / n, {key: v / n for key, v in zip(keys, values[2:])}, bad
