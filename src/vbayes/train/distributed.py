"""Data-parallel training with PyTorch's own engine (``torch.distributed``, launched by ``torchrun``).

``torchrun --nproc_per_node=N -m vbayes vae ...`` starts N processes with the environment
variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. When
``WORLD_SIZE > 1`` the trainer calls :func:`init_distributed` (backend gloo on CPU, nccl on
CUDA), wraps the model in ``DistributedDataParallel`` and splits every global mini-batch across
the ranks with :func:`shard_indices`. Everything here is a no-op in a single process.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist

from vbayes.errors import VBayesError

__all__ = [
    "DistInfo",
    "env_info",
    "init_distributed",
    "is_main_process",
    "shard_indices",
    "barrier",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` in ``0..world_size-1`` and its ``local_rank`` on the node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only process that writes files and shows progress."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise VBayesError(f"environment variable {name}={text!r} is not an integer") from None


def env_info() -> DistInfo:
    """The :class:`DistInfo` that ``torchrun``'s environment variables describe (1 process if unset)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise VBayesError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def init_distributed(device: str | torch.device = "cpu") -> tuple[DistInfo, torch.device]:
    """Join the process group when ``WORLD_SIZE > 1`` and pick this rank's device.

    Backend gloo for CPU devices, nccl for CUDA (each rank uses ``cuda:LOCAL_RANK``). Calling it
    again is harmless. Returns the :class:`DistInfo` and the device this rank trains on.
    """
    info = env_info()
    dev = torch.device(device)
    if info.enabled and dev.type == "cuda":
        dev = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(dev)
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
        atexit.register(_destroy)
    return info, dev


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True unless this is a rank > 0 of a ``torchrun`` job (use it to guard file writes)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return env_info().rank == 0


def shard_indices(batch: torch.Tensor, rank: int, world_size: int) -> tuple[torch.Tensor, float]:
    """This rank's share of one global mini-batch of example indices.

    ``batch`` (shape ``(B,)``) is split into ``world_size`` nearly equal contiguous pieces.
    Returns ``(local, weight)`` where ``local`` has shape ``(B_r,)`` and
    ``weight = B_r * world_size / B``: scaling the rank's mean loss by ``weight`` makes the
    gradient that ``DistributedDataParallel`` averages over ranks equal the gradient of the
    mean loss over the whole global batch, even when ``B`` is not divisible by ``world_size``.
    A rank left without examples (``B < world_size``) gets the first index with weight 0, so
    it still takes part in the gradient all-reduce.
    """
    if world_size == 1:
        return batch, 1.0
    size = batch.shape[0]
    start = size * rank // world_size
    stop = size * (rank + 1) // world_size
    if stop == start:
        return batch[:1], 0.0
    return batch[start:stop], (stop - start) * world_size / size


def barrier() -> None:
    """Wait until every rank gets here (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawned(rank: int, fn: Callable[..., Any], world_size: int, port: int, threads: int, args: tuple) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(threads)
    try:
        fn(*args)
    finally:  # spawned children skip atexit handlers: leave the group explicitly
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def launch_local(
    fn: Callable[..., Any],
    nprocs: int,
    args: tuple = (),
    threads: int = 1,
    start_method: str = "spawn",
    timeout: float | None = None,
) -> None:
    """Run ``fn(*args)`` in ``nprocs`` fresh processes on this machine, as ``torchrun`` would.

    Each process gets ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` and
    ``threads`` intra-op threads; ``fn`` must be importable (a module-level function). Raises
    when a process fails. ``start_method="fork"`` starts faster but is only safe when this
    process has not started any thread pools yet. After ``timeout`` seconds the processes are
    terminated and ``TimeoutError`` is raised. Used by the tests and ``vbayes bench ddp``;
    users run ``torchrun``.
    """
    import time

    import torch.multiprocessing as mp

    context = mp.start_processes(_spawned, args=(fn, nprocs, _free_port(), threads, args), nprocs=nprocs,
                                 join=False, start_method=start_method)  # fmt: skip
    deadline = None if timeout is None else time.monotonic() + timeout
    while not context.join(timeout=1.0):
        if deadline is not None and time.monotonic() > deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            raise TimeoutError(f"{nprocs} training processes did not finish within {timeout:.0f} s")
