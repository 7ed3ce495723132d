"""Writing a run directory so that a failed run leaves nothing half-written, but stays resumable.

A command stages every file of a run (``config.json``, ``metrics.json``, ``checkpoint.pt``,
``log.csv``, ``figures/``, ``report.html``) in a hidden directory inside ``--out`` and moves
them into place only when the run has succeeded::

    out = prepare_out(args.out, args.overwrite, resume=args.resume)
    with resumable_run(out, not existed, args.resume, args.overwrite) as run:   # or StagedRun(out, ...)
        trainer = Trainer(model, loss_fn, config, out_dir=run.staging, callbacks=[run])
        trainer.fit(train, val, resume=run.resume_from or False)
        ...
        write_json(run.staging / "metrics.json", metrics)
    # here the files are in ``out``

What is left after each way a run can end:

* success: the run's files in ``out`` (the previous run's are replaced), no ``.staging-*``
  folder (stale ones from killed runs are removed too);
* an exception (bad input, ``TrainingDiverged``, Ctrl-C): the staging folder is removed, except
  its ``last.pt`` (the last good epoch), which is moved atomically to ``out/last.pt`` so that
  ``--resume`` / ``vbayes resume`` can continue; ``out`` itself is removed again when this run
  created it and nothing is left in it;
* SIGKILL or power loss: the staging folder stays, with a complete ``last.pt`` (written
  atomically), which :func:`vbayes.checkpoint.find_last_checkpoint` finds there.

A resumed run (``resume_from``) stages into a fresh folder too: ``checkpoint.pt`` and
``log.csv`` are rebuilt there from the ``last.pt`` it continues, and that ``last.pt`` is moved in
after the first resumed epoch (or at the end, when no epoch was left), so at every moment one
complete ``last.pt`` to resume from exists.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from vbayes.errors import TrainingDiverged, VBayesError

#: Files and folders a run directory may hold; an overwritten run loses its old ones first.
RUN_FILES = ("config.json", "metrics.json", "checkpoint.pt", "last.pt", "log.csv", "report.html", "figures")
STAGING_PREFIX = ".staging-"


class StagedRun:
    """Context manager that stages a run in ``out/.staging-*`` and commits it on success.

    Args:
        out: the run directory (already created, e.g. by ``prepare_out``).
        created: whether this run created ``out`` (it is then removed again on failure when empty).
        resume_from: the ``last.pt`` this run continues (``find_last_checkpoint(out)``), or None
            for a fresh run. A fresh run forgets the resumable state of an earlier unfinished
            run in ``out`` (``out/last.pt`` and stale ``.staging-*`` folders) when it starts.

    Pass the object as a trainer callback (``callbacks=[run]``) when resuming: after the first
    resumed epoch it moves ``resume_from`` into the staging folder (see the module docstring).
    """

    def __init__(
        self, out: str | os.PathLike[str], created: bool = False, resume_from: str | os.PathLike[str] | None = None
    ) -> None:
        self.out = Path(out)
        self.created = created
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.staging: Path = self.out  # replaced on __enter__
        self._adopted = False

    def __enter__(self) -> "StagedRun":
        if self.resume_from is None:
            self._forget_unfinished()
        try:
            self.staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.out))
        except OSError as err:
            raise VBayesError(f"--out {self.out} cannot be written: {err.strerror or err}") from None
        if self.resume_from is not None:
            try:
                restore_run_files(self.resume_from, self.staging)
            except BaseException:
                shutil.rmtree(self.staging, ignore_errors=True)
                raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
            return
        self.abort()
        if isinstance(exc, TrainingDiverged) and len(exc.args) == 1 and isinstance(exc.args[0], str):
            from vbayes.checkpoint import find_last_checkpoint  # the message names where last.pt is now

            kept = find_last_checkpoint(self.out)
            exc.args = (exc.args[0].replace(str(self.staging / "last.pt"), str(kept) if kept else "none"),)

    def on_epoch_end(self, trainer: Any, row: dict[str, Any]) -> None:
        """Trainer callback: adopt the resumed ``last.pt`` (the trainer then overwrites it)."""
        self.adopt_last()

    def adopt_last(self) -> None:
        """Move ``resume_from`` to ``staging/last.pt`` (once) and drop the folder it was staged in.

        Called after the first resumed epoch, when every process has read it; until then it
        stays where it was, so a kill before that epoch ends can still be resumed.
        """
        source = self.resume_from
        if source is None or self._adopted or not source.exists():
            return
        self._adopted = True
        target = self.staging / "last.pt"
        if not target.exists():
            os.replace(source, target)
        folder = source.parent
        if folder != self.staging and folder.parent == self.out and folder.name.startswith(STAGING_PREFIX):
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self) -> None:
        """Replace the previous run's files in ``out`` by the staged ones; remove stale staging folders."""
        self.adopt_last()
        for name in RUN_FILES:
            old = self.out / name
            if (self.staging / name).exists() or old.exists():
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old)
                elif old.exists() or old.is_symlink():
                    old.unlink()
        for item in sorted(self.staging.iterdir()):
            os.replace(item, self.out / item.name)
        self.staging.rmdir()
        self._remove_stale_staging()

    def abort(self) -> None:
        """Keep ``last.pt`` as ``out/last.pt`` and remove every other staged file.

        ``out`` is removed too when this run created it and nothing else is there.
        """
        last = self.staging / "last.pt"
        if last.is_file():
            os.replace(last, self.out / "last.pt")
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.created:
            try:
                self.out.rmdir()
            except OSError:
                pass

    def _forget_unfinished(self) -> None:
        """A fresh run: an earlier run's ``last.pt`` must not be what ``--resume`` finds later."""
        last = self.out / "last.pt"
        if last.is_file() or last.is_symlink():
            last.unlink()
        self._remove_stale_staging()

    def _remove_stale_staging(self) -> None:
        for folder in self.out.glob(f"{STAGING_PREFIX}*"):
            if folder != self.staging and folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)


def resumable_run(out: str | os.PathLike[str], created: bool, resume: bool, overwrite: bool) -> StagedRun:
    """The :class:`StagedRun` of a command with ``--resume``, after ``prepare_out(out, overwrite, resume)``.

    With ``resume`` it continues ``find_last_checkpoint(out)`` (pass ``run.resume_from`` to
    ``Trainer.fit(resume=...)`` and ``run`` as a trainer callback). Without it, an unfinished run
    in ``out`` (a ``last.pt`` without a finished run around it) is refused unless ``overwrite``,
    so that a forgotten ``--resume`` never discards it silently.
    """
    from vbayes.checkpoint import find_last_checkpoint

    last = find_last_checkpoint(out)
    if last is not None and not (resume or overwrite):
        raise VBayesError(f"--out {out} holds an unfinished run ({last}); "
                          "pass --resume to continue it or --overwrite to start afresh")  # fmt: skip
    return StagedRun(out, created=created, resume_from=last if resume else None)


def restore_run_files(last: str | os.PathLike[str], folder: str | os.PathLike[str]) -> None:
    """Rebuild ``checkpoint.pt`` and ``log.csv`` in ``folder`` from a trainer's ``last.pt``.

    They hold what the trainer wrote when it saved ``last``: the best-on-validation weights so far
    (``kind="best"``, ``model``, ``epoch``, ``val_loss``, ``config``) and one row per finished epoch.
    Raises :class:`~vbayes.errors.CheckpointError` when ``last`` is unreadable.
    """
    from vbayes.checkpoint import load_checkpoint, save_checkpoint
    from vbayes.training.logs import write_log_csv

    data = load_checkpoint(last)
    target = Path(folder)
    if data.get("best_model") is not None:
        save_checkpoint(
            target / "checkpoint.pt",
            {"kind": "best", "model": data["best_model"], "epoch": data.get("best_epoch"),
             "val_loss": data.get("best_val"), "config": data.get("config")},
        )  # fmt: skip
    if data.get("history"):
        write_log_csv(target / "log.csv", data["history"])


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
