"""Writing a run directory so that a failed run leaves nothing half-written.

A command stages every file of a run (``config.json``, ``metrics.json``, ``checkpoint.pt``,
``log.csv``, ``figures/``, ``report.html``) in a hidden directory inside ``--out`` and moves
them into place only when the run has succeeded::

    with StagedRun(out, created=not existed) as run:
        trainer = Trainer(model, loss_fn, config, out_dir=run.staging)
        ...
        write_json(run.staging / "metrics.json", metrics)
    # here the files are in ``out``; on an exception the staging directory is removed (and ``out``
    # too when this run created it and it is empty)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from vbayes.errors import VBayesError

#: Files and folders a run directory may hold; an overwritten run loses its old ones first.
RUN_FILES = ("config.json", "metrics.json", "checkpoint.pt", "last.pt", "log.csv", "report.html", "figures")


class StagedRun:
    """Context manager that stages a run in ``out/.staging-*`` and commits it on success.

    Args:
        out: the run directory (already created, e.g. by ``prepare_out``).
        created: whether this run created ``out`` (it is then removed again on failure when empty).
    """

    def __init__(self, out: str | os.PathLike[str], created: bool = False) -> None:
        self.out = Path(out)
        self.created = created
        self.staging: Path = self.out  # replaced on __enter__

    def __enter__(self) -> "StagedRun":
        try:
            self.staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.out))
        except OSError as err:
            raise VBayesError(f"--out {self.out} cannot be written: {err.strerror or err}") from None
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def commit(self) -> None:
        """Replace the previous run's files in ``out`` by the staged ones."""
        for name in RUN_FILES:
            old = self.out / name
            if (self.staging / name).exists() or old.exists():
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old)
                elif old.exists():
                    old.unlink()
        for item in sorted(self.staging.iterdir()):
            os.replace(item, self.out / item.name)
        self.staging.rmdir()

    def abort(self) -> None:
        """Remove the staged files (and ``out`` when this run created it and nothing else is there)."""
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.created:
            try:
                self.out.rmdir()
            except OSError:
                pass


def json_ready(value: Any) -> Any:
    """``value`` with tuples as lists, paths as strings and non-finite floats as ``None``."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
