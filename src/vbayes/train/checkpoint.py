"""Safe, versioned checkpoint files.

Two kinds of file live in a run directory:

* ``last.pt`` — everything needed to continue training after a crash: model and optimizer
  state, scheduler state, the number of finished epochs, the global step, the best validation
  loss and its weights, the early-stopping counter, the history, the random-number generator
  states (torch, CUDA, numpy, Python, the trainer's shuffle generator) and the run config.
* ``checkpoint.pt`` — the best-on-validation model weights and the run config.

Both are written atomically (temporary file in the same directory, fsync, rename), so a kill
at any moment leaves either the previous file or the new one. Both hold only tensors and plain
Python containers/numbers/strings, so :func:`load_checkpoint` reads them with
``torch.load(..., weights_only=True)``: loading a file from someone else never runs code.
"""

from __future__ import annotations

import io
import json
import os
import random
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vbayes.errors import CheckpointError
from vbayes.files import atomic_write_bytes

FORMAT = "vbayes-checkpoint"
VERSION = 1

__all__ = [
    "FORMAT",
    "VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "get_rng_state",
    "set_rng_state",
    "plain_config",
    "find_last_checkpoint",
]


def plain_config(config: Any) -> Any:
    """``config`` as JSON-compatible plain data (dicts, lists, str, numbers, bool, None).

    Paths and other objects become strings; this keeps checkpoints loadable with
    ``weights_only=True`` and ``config.json`` writable.
    """
    return json.loads(json.dumps(config, default=str))


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (tensors and plain containers only) as a vbayes checkpoint.

    ``format`` and ``version`` keys are added. The caller keeps the payload to tensors and plain
    containers (use :func:`plain_config` for configs) so that :func:`load_checkpoint` can read it.
    """
    data = {"format": FORMAT, "version": VERSION, **payload}
    buffer = io.BytesIO()
    torch.save(data, buffer)
    raw = buffer.getvalue()
    atomic_write_bytes(path, raw)


def _first_line(err: BaseException, limit: int = 160) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _check_container(file: Path) -> None:
    """Refuse, before unpickling, a file that torch.save did not write whole (empty, cut short, foreign bytes)."""
    with open(file, "rb") as handle:
        head = handle.read(4)
    if not head:
        raise CheckpointError(f"checkpoint {file} is unreadable: truncated (the file is empty)")
    if head == b"PK\x03\x04":  # torch.save's zip container
        if not zipfile.is_zipfile(file):
            raise CheckpointError(f"checkpoint {file} is unreadable: truncated (its zip archive is incomplete)")
    elif not (head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5):  # nor a bare pickle
        raise CheckpointError(f"checkpoint {file} is not a vbayes checkpoint (not a file written by torch.save)")


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a vbayes checkpoint safely (``torch.load(weights_only=True)``).

    Returns the stored dict (``format``, ``version``, ``model``, ...). Raises
    :class:`~vbayes.errors.CheckpointError` with a one-line message naming the file when it is
    missing, truncated, corrupted, not a vbayes checkpoint, of an unknown format version, or a
    pickle that asks to build arbitrary objects (it is never executed).
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint {file} does not exist")
    _check_container(file)
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the error below says enough
            warnings.simplefilter("ignore")
            data = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to decode means a bad file
        reason = _first_line(err)
        if "Weights only load failed" in reason or "Unsupported global" in str(err):
            reason = "it contains objects other than tensors and plain data (refused, not executed)"
        raise CheckpointError(f"checkpoint {file} is unreadable: {reason}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {file} is not a vbayes checkpoint")
    version = data.get("version")
    if version != VERSION:
        raise CheckpointError(
            f"checkpoint {file} has format version {version!r}; this vbayes reads version {VERSION}"
        )
    return data


def get_rng_state(shuffle: torch.Generator | None = None) -> dict[str, Any]:
    """The global RNG states (torch, CUDA, numpy, Python) and ``shuffle``'s, as tensors and lists.

    Numpy's state array becomes an int64 tensor and Python's state tuple a list, so the result
    can be stored in a ``weights_only`` checkpoint. Restore with :func:`set_rng_state`.
    """
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": {"version": int(py_version), "state": [int(v) for v in py_state], "gauss": py_gauss},
    }
    if shuffle is not None:
        state["shuffle"] = shuffle.get_state()
    return state


def set_rng_state(state: dict[str, Any], shuffle: torch.Generator | None = None) -> None:
    """Restore the states saved by :func:`get_rng_state` (and ``shuffle``'s when both exist)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    npst = state["numpy"]
    keys = npst["keys"].numpy().astype(np.uint32)
    np.random.set_state((npst["name"], keys, npst["pos"], npst["has_gauss"], npst["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    if shuffle is not None and "shuffle" in state:
        shuffle.set_state(state["shuffle"])


def find_last_checkpoint(out: str | os.PathLike[str]) -> Path | None:
    """The ``last.pt`` to resume a run in ``out`` from, or None.

    The most recently written of ``out/last.pt`` and the ``last.pt`` files in ``out``'s hidden
    ``.staging-*`` folders (where an interrupted command stages its files); ``out/last.pt`` on a tie.
    """
    root = Path(out)
    found = [p for p in [root / "last.pt", *root.glob(".staging-*/last.pt")] if p.is_file()]
    return max(found, key=lambda p: (p.stat().st_mtime_ns, p.parent == root)) if found else None
