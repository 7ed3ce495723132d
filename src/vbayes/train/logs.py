"""The per-epoch CSV log of a run (``log.csv``)."""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Sequence

from vbayes.files import atomic_write_bytes

FIRST_COLUMNS = ("epoch", "train_loss", "val_loss", "seconds")


def log_columns(history: Sequence[dict[str, Any]]) -> list[str]:
    """``epoch, train_loss, val_loss, seconds`` and then every other key in order of appearance."""
    columns = list(FIRST_COLUMNS)
    for row in history:
        for key in row:
            if key not in columns:
                columns.append(key)
    return columns


def write_log_csv(path: str | os.PathLike[str], history: Sequence[dict[str, Any]]) -> None:
    """Atomically (re)write ``path`` with one row per epoch; missing values are empty cells.

    Floats are written with ``repr`` so the file round-trips exactly.
    """
    columns = log_columns(history)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in history:
        writer.writerow(["" if row.get(c) is None else repr(row[c]) if isinstance(row[c], float) else row[c] for c in columns])
    atomic_write_bytes(path, buffer.getvalue().encode())
