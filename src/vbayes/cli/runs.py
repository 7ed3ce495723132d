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
  atomically), which :func:`vbayes.train.checkpoint.find_last_checkpoint` finds there.

A resumed run (``resume_from``) stages into a fresh folder too: ``checkpoint.pt`` and
``log.csv`` are rebuilt there from the ``last.pt`` it continues, and that ``last.pt`` is moved in
after the first resumed epoch (or at the end, when no epoch was left), so at every moment one
complete ``last.pt`` to resume from exists.

Ownership and locking (:func:`claim_out`, called by ``prepare_out``): a run directory holds a
marker file ``.vbayes-run``; a non-empty folder without one (the user's own files) is never
written into, with or without ``--overwrite``. The marker is also the lock: the process that
runs into ``out`` holds ``fcntl.flock(LOCK_EX)`` on it until :func:`release_out` (the command
line releases at exit), so a second concurrent run into the same ``out`` fails at once.

Replacing a run (:meth:`StagedRun.commit`) is journalled so that a kill at any moment leaves
either the whole previous run or the whole new one: the finished staging folder is marked
``.complete``, the previous run's files are moved into ``.old-*`` (then marked ``.moved``), the
new ones moved into place, and ``.old-*`` removed; :func:`recover_commit` (run whenever ``out``
is claimed) finishes a commit that a kill interrupted. Until the commit, a failed or killed
``--overwrite`` run leaves the previous run as it was (its ``last.pt`` included) and keeps its
own ``last.pt`` in its staging folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from vbayes.errors import TrainingDiverged, VBayesError
from vbayes.files import write_json

#: Files and folders a run directory may hold (an overwritten run loses everything it held).
RUN_FILES = ("config.json", "metrics.json", "checkpoint.pt", "last.pt", "log.csv", "report.html", "figures")
STAGING_PREFIX = ".staging-"
#: The marker (and lock) file that makes a folder recognisable as a vbayes run directory.
MARKER = ".vbayes-run"
_COMPLETE = ".complete"  # in a staging folder: the run is finished, commit rolls forward
_MOVED = ".moved"  # in .old-*: every file of the previous run is in there
_INTERNAL = (STAGING_PREFIX, ".old-", ".trash-", ".probe-")
#: In the staging folder of a run in stages: its command line, and the finished stages' results.
RESUME_RECORD = "resume.json"
STAGES = ".stages"


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
        self, out: str | os.PathLike[str], created: bool = False, resume_from: str | os.PathLike[str] | None = None,
        *, command: str | None = None, continue_in: str | os.PathLike[str] | None = None,
    ) -> None:
        self.out = Path(out)
        self.created = created
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.command = command
        self.continue_in = Path(continue_in) if continue_in is not None else None
        self.staging: Path = self.out  # replaced on __enter__
        self._adopted = False

    def __enter__(self) -> "StagedRun":
        if self.continue_in is not None:  # a run in stages continues in its own staging folder
            self.staging = self.continue_in
            return self
        if self.resume_from is None:
            self._forget_unfinished()
        try:
            self.staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.out))
            if self.command is not None:
                write_json(self.staging / RESUME_RECORD, {"command": self.command})
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
            from vbayes.train.checkpoint import find_last_checkpoint  # the message names where last.pt is now

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
        """Replace everything the previous run left in ``out`` by the staged files, as one journalled swap."""
        self.adopt_last()
        (self.staging / RESUME_RECORD).unlink(missing_ok=True)
        shutil.rmtree(self.staging / STAGES, ignore_errors=True)
        (self.staging / _COMPLETE).touch()
        _roll_forward(self.out, self.staging)
        self._remove_stale_staging()

    def abort(self) -> None:
        """Keep this run's ``last.pt`` and remove every other staged file.

        The ``last.pt`` becomes ``out/last.pt`` unless ``out`` holds a finished run (``metrics.json``),
        whose files, ``last.pt`` included, stay as they were: it then stays in its staging folder,
        where ``--resume`` finds it. ``out`` is removed too when this run created it and nothing
        else is there.
        """
        if self.command is not None and any(p.is_file() and p.name != RESUME_RECORD for p in self.staging.rglob("*")):
            return  # finished stages stay in the staging folder, for --resume
        last = self.staging / "last.pt"
        if last.is_file() and (self.out / "metrics.json").exists():
            for item in self.staging.iterdir():
                if item != last:
                    shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
            return
        if last.is_file():
            os.replace(last, self.out / "last.pt")
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.created:
            try:
                self.out.rmdir()
            except OSError:
                pass

    def _forget_unfinished(self) -> None:
        """A fresh run: an earlier unfinished run's ``last.pt`` must not be what ``--resume`` finds later.

        The ``last.pt`` of a finished run (beside its ``metrics.json``) stays until the commit.
        """
        last = self.out / "last.pt"
        if not (self.out / "metrics.json").exists() and (last.is_file() or last.is_symlink()):
            last.unlink()
        self._remove_stale_staging()

    def _remove_stale_staging(self) -> None:
        recover_commit(self.out)
        for folder in self.out.glob(f"{STAGING_PREFIX}*"):
            if folder != self.staging and folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)


def _internal(name: str) -> bool:
    return name == MARKER or name.startswith(_INTERNAL)


def _roll_forward(out: Path, staging: Path) -> None:
    """Swap a ``.complete`` staging folder into ``out`` (resumable at any point, see the module docstring)."""
    old = out / (".old-" + staging.name[len(STAGING_PREFIX):])
    staged = [item for item in sorted(staging.iterdir()) if item.name != _COMPLETE]
    old.mkdir(exist_ok=True)
    if staged and not (old / _MOVED).exists():  # nothing staged left: the new files are in place
        for item in sorted(out.iterdir()):
            if not _internal(item.name):
                os.replace(item, old / item.name)
        (old / _MOVED).touch()
    for item in staged:
        os.replace(item, out / item.name)
    trash = out / (".trash-" + staging.name[len(STAGING_PREFIX):])
    os.replace(old, trash)
    (staging / _COMPLETE).unlink()
    staging.rmdir()
    shutil.rmtree(trash, ignore_errors=True)


def recover_commit(out: str | os.PathLike[str]) -> None:
    """Finish a commit that a kill interrupted (a ``.complete`` staging folder) and remove ``.trash-*``."""
    root = Path(out)
    for staging in sorted(root.glob(f"{STAGING_PREFIX}*/{_COMPLETE}")):
        _roll_forward(root, staging.parent)
    for folder in root.glob(".trash-*"):
        shutil.rmtree(folder, ignore_errors=True)


def resumable_run(out: str | os.PathLike[str], created: bool, resume: bool, overwrite: bool) -> StagedRun:
    """The :class:`StagedRun` of a command with ``--resume``, after ``prepare_out(out, overwrite, resume)``.

    With ``resume`` it continues ``find_last_checkpoint(out)`` (pass ``run.resume_from`` to
    ``Trainer.fit(resume=...)`` and ``run`` as a trainer callback). Without it, an unfinished run
    in ``out`` (a ``last.pt`` without a finished run around it) is refused unless ``overwrite``,
    so that a forgotten ``--resume`` never discards it silently.
    """
    from vbayes.train.checkpoint import find_last_checkpoint

    last = find_last_checkpoint(out)
    if resume and last is None:  # e.g. only the unfinished stages of another command
        raise VBayesError(f"--resume: nothing to resume in {out} (no last.pt)")
    if last is not None and not (resume or overwrite):
        raise VBayesError(f"--out {out} holds an unfinished run ({last}); "
                          "pass --resume to continue it or --overwrite to start afresh")  # fmt: skip
    return StagedRun(out, created=created, resume_from=last if resume else None)


def find_stages(out: str | os.PathLike[str]) -> Path | None:
    """The staging folder of the newest unfinished run in stages (it holds ``resume.json``), or None."""
    found = [p.parent for p in Path(out).glob(f"{STAGING_PREFIX}*/{RESUME_RECORD}") if p.is_file()]
    return max(found, key=lambda p: (p / RESUME_RECORD).stat().st_mtime_ns) if found else None


def stage_run(out: str | os.PathLike[str], created: bool, resume: bool, overwrite: bool, command: str) -> StagedRun:
    """The :class:`StagedRun` of a command that runs in stages (``compare-ae``, ``demo``, ``uq``).

    Each finished stage (a trained model's folder, a method's results in ``staging/.stages``)
    stays in the staging folder when the run fails or is interrupted; ``resume`` continues in
    that folder and the command skips what is there. ``command`` (the full command line) is
    recorded in ``resume.json`` for ``vbayes resume``. Without ``resume`` an unfinished run is
    refused unless ``overwrite`` (which starts afresh).
    """
    folder = find_stages(out)
    if folder is not None and not (resume or overwrite):
        raise VBayesError(f"--out {out} holds an unfinished run ({folder}); "
                          "pass --resume to continue it or --overwrite to start afresh")  # fmt: skip
    if resume and folder is None:
        raise VBayesError(f"--resume: nothing to resume in {out} (no unfinished run)")
    return StagedRun(out, created=created, command=command, continue_in=folder if resume else None)


def restore_run_files(last: str | os.PathLike[str], folder: str | os.PathLike[str]) -> None:
    """Rebuild ``checkpoint.pt`` and ``log.csv`` in ``folder`` from a trainer's ``last.pt``.

    They hold what the trainer wrote when it saved ``last``: the best-on-validation weights so far
    (``kind="best"``, ``model``, ``epoch``, ``val_loss``, ``config``) and one row per finished epoch.
    Raises :class:`~vbayes.errors.CheckpointError` when ``last`` is unreadable.
    """
    from vbayes.train.checkpoint import load_checkpoint, save_checkpoint
    from vbayes.train.logs import write_log_csv

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


# ------------------------------------------------------------------ ownership and locking of --out
@dataclass
class _Claim:
    fd: int
    created: bool  # this process created ``out``
    marked: bool  # this process wrote the marker (``out`` was new or empty)


_CLAIMS: dict[Path, _Claim] = {}


def is_run_dir(out: str | os.PathLike[str]) -> bool:
    """Whether ``out`` is a vbayes run directory: it holds the marker, or (runs written before the
    marker existed) a ``config.json`` recording a ``vbayes`` command or a readable vbayes ``last.pt``."""
    from vbayes.train.checkpoint import find_last_checkpoint, load_checkpoint

    root = Path(out)
    if (root / MARKER).is_file():
        return True
    try:
        command = json.loads((root / "config.json").read_text()).get("command")
        if isinstance(command, str) and command.startswith("vbayes "):
            return True
    except (OSError, ValueError, AttributeError):
        pass
    last = find_last_checkpoint(root)
    try:
        return last is not None and isinstance(load_checkpoint(last), dict)
    except VBayesError:
        return False


def check_not_foreign(out: str | os.PathLike[str]) -> None:
    """Refuse a non-empty folder that is not a vbayes run (the user's own files are never touched)."""
    root = Path(out)
    if root.is_dir() and any(root.iterdir()) and not is_run_dir(root):
        raise VBayesError(f"--out {root} is a non-empty folder that is not a vbayes run; "
                          "choose a new or empty directory (--overwrite replaces only a vbayes run)")  # fmt: skip


def claim_out(out: str | os.PathLike[str]) -> Path:
    """Create ``out`` if needed, mark it as a run directory and lock it for this process.

    Raises :class:`VBayesError` when another process holds the lock or ``out`` cannot be
    written. Interrupted commits are finished (:func:`recover_commit`). Released by
    :func:`release_out` (the ``vbayes`` command line releases every claim when a command ends).
    """
    root = Path(out)
    key = root.absolute()
    if key in _CLAIMS:
        return root
    check_not_foreign(root)
    for _ in range(5):  # retried when the marker was removed between open and flock
        try:
            created = not root.exists()
            root.mkdir(parents=True, exist_ok=True)
            marked = not (root / MARKER).exists()
            fd = os.open(root / MARKER, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise VBayesError(f"--out {root} cannot be written: {err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise VBayesError(f"--out {root} is in use by another vbayes run; "
                              "wait for it to end or choose another --out") from None  # fmt: skip
        try:
            same = os.stat(root / MARKER).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
    else:
        raise VBayesError(f"--out {root} keeps changing under this run; is another vbayes run using it?")
    if os.fstat(fd).st_size == 0:
        os.write(fd, b"vbayes run directory\n")
    _CLAIMS[key] = _Claim(fd, created, marked)
    recover_commit(root)
    return root


def release_out(out: str | os.PathLike[str] | None = None) -> None:
    """Unlock ``out`` (every claimed directory when None); a directory this run only marked (it was
    new or empty, and nothing else is in it now) loses its marker, and is removed if it created it."""
    keys = list(_CLAIMS) if out is None else [Path(out).absolute()]
    for key in keys:
        claim = _CLAIMS.pop(key, None)
        if claim is None:
            continue
        try:
            if claim.marked and [p.name for p in key.iterdir()] == [MARKER]:
                (key / MARKER).unlink()
                if claim.created:
                    key.rmdir()
        except OSError:
            pass
        os.close(claim.fd)
