"""Options and helpers shared by the sub-commands that train and write a run directory."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from vbayes.errors import VBayesError
from vbayes.losses import LIKELIHOODS
from vbayes.models.nets import ARCHS


def checked_number(convert: Callable[[str], Any], within: Callable[[Any], bool], expected: str, bound: str,
                   name: str) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)``, refused unless ``within(value)``.

    The two one-line errors read ``expected {expected}, got 'text'`` (not a number) and
    ``must be {bound}, got text`` (out of range); ``name`` is the function's ``__name__``.
    """

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not within(value):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    parse.__name__ = parse.__qualname__ = name
    parse.__doc__ = f"argparse type: {expected}, {bound}."
    return parse


positive_int = checked_number(int, lambda v: v >= 1, "a positive integer", ">= 1", "positive_int")
nonneg_int = checked_number(int, lambda v: v >= 0, "an integer >= 0", ">= 0", "nonneg_int")
seed_int = checked_number(int, lambda v: 0 <= v < 2**32, "an integer seed", f"in 0 .. {2**32 - 1}", "seed_int")
"""A random seed: an integer in 0 .. 2**32 - 1 (what every generator accepts)."""
positive_float = checked_number(float, lambda v: 0 < v < math.inf, "a positive number", "a finite number > 0",
                                "positive_float")  # fmt: skip
nonneg_float = checked_number(float, lambda v: 0 <= v < math.inf, "a number >= 0", "a finite number >= 0",
                              "nonneg_float")  # fmt: skip


def widths(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated layer widths, each >= 1 (``50`` or ``100,100``)."""
    try:
        out = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"widths must be integers >= 1, got {text!r}")
    return out


def add_image_model_args(parser: argparse.ArgumentParser, defaults: Any, *, likelihood: bool = True) -> None:
    """``--data``, ``--arch``, ``--likelihood`` (unless ``likelihood=False``), ``--hidden``, ``--epochs``,
    ``--batch-size`` and ``--lr`` of the auto-encoder commands, whose defaults are the attributes
    of the same names of ``defaults`` (the library's options class, e.g.
    :class:`~vbayes.studies.autoencoders.vae_run.AutoencoderOptions`); ``--data`` defaults to mnist5k."""
    parser.add_argument("--data", default="mnist5k", help="image data set: mnist5k, digits, mnist, fashion-mnist "
                                                          "(default mnist5k)")  # fmt: skip
    parser.add_argument("--arch", default=defaults.arch, choices=ARCHS,
                        help=f"encoder/decoder networks (default {defaults.arch})")
    if likelihood:
        parser.add_argument("--likelihood", default=defaults.likelihood, choices=LIKELIHOODS,
                            help=f"decoder likelihood (default {defaults.likelihood}, on dynamically binarised pixels)")
    parser.add_argument("--hidden", type=positive_int, default=defaults.hidden,
                        help=f"hidden width (default {defaults.hidden})")
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                        help=f"training epochs (default {defaults.epochs})")
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                        help=f"mini-batch size (default {defaults.batch_size})")
    parser.add_argument("--lr", type=positive_float, default=defaults.lr,
                        help=f"Adam learning rate (default {defaults.lr:g})")


def add_run_args(parser: argparse.ArgumentParser, default_out: str, resumable: bool = False) -> None:
    """``--out``, ``--overwrite``, ``--seed``, ``--device``, ``--data-dir`` and ``--config FILE``.

    With ``resumable=True`` also ``--resume`` (continue the run in ``--out`` from its
    ``last.pt``); a command that opts in passes ``args.resume`` to ``prepare_out`` and
    ``find_last_checkpoint(out)`` to ``Trainer.fit(resume=...)``. ``--config FILE`` reads any of
    the parser's long options from a JSON/TOML file (see :mod:`vbayes.cli.config`).
    """
    parser.add_argument("--out", default=default_out, help=f"run directory (default {default_out})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    parser.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="directory of data files (MNIST IDX, UCI layout); default $VBAYES_DATA",
    )
    if resumable:
        parser.add_argument(
            "--resume",
            action="store_true",
            help="continue the interrupted run in --out from its last checkpoint (last.pt)",
        )
    from vbayes.cli.config import install_config_option

    install_config_option(parser)


#: Multiply-adds beyond which an evaluation is refused up front (hours to days on a CPU).
MAX_WORK = 1e14


def check_fits(image_shape: Sequence[int], hidden: int, latent: int, *, samples: int = 1, n_test: int = 0,
               samples_option: str = "--samples") -> None:
    """Refuse up front (one line) an auto-encoder that cannot fit in memory, or a sampled test
    evaluation (``samples`` decoder passes per test image) that would run for days.

    The network is about ``2 * (pixels * hidden + hidden * latent)`` weights, each with a gradient
    and two Adam moments (16 bytes in float32).
    """
    pixels = math.prod(int(s) for s in image_shape)
    weights = 2.0 * (pixels * hidden + hidden * latent)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if 16 * weights > memory:
        raise VBayesError(f"--hidden {hidden}: the networks would hold about {weights:.2g} weights "
                          f"({16 * weights / 2**30:,.0f} GiB to train), more than this machine's "
                          f"{memory / 2**30:,.0f} GiB")  # fmt: skip
    work = float(samples) * n_test * weights / 2
    if work > MAX_WORK:
        raise VBayesError(f"{samples_option} {samples}: the test evaluation would take about {work:.1g} "
                          f"multiply-adds ({n_test} images x {samples} decoder passes), hours to days; "
                          "use fewer")  # fmt: skip


def resolve_device(name: str) -> torch.device:
    """A ``torch.device`` from a user string (cpu, cuda[:N], mps), with a one-line error when unusable."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise VBayesError(f"unknown --device {name!r} (try cpu or cuda)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise VBayesError("--device cuda asked for, but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise VBayesError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA devices")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise VBayesError("--device mps asked for, but no MPS (Apple GPU) device is available")
    elif device.type != "cpu":
        raise VBayesError(f"--device {name!r} cannot train a model here; use cpu, cuda or mps")
    return device


def prepare_out(path: str | os.PathLike[str], overwrite: bool, resume: bool = False) -> Path:
    """Create and lock the run directory, refusing to replace a previous run unless ``overwrite``.

    A non-empty folder that is not a vbayes run (no ``.vbayes-run`` marker, see
    :mod:`vbayes.cli.runs`) is refused even with ``overwrite``. A directory counts as a previous run
    when it holds ``config.json`` or ``metrics.json``. With ``resume`` the directory must instead
    hold a checkpoint to continue from (``last.pt``, possibly in an unfinished ``.staging-*``
    folder). The directory stays locked (:func:`vbayes.cli.runs.claim_out`) until
    :func:`vbayes.cli.runs.release_out`; a second run into it fails at once. Raises
    :class:`VBayesError` when the path is empty, cannot be written or is locked.

    Under ``torchrun`` only rank 0 writes (and locks) the run: the other ranks check the same
    conditions (so every rank fails alike), then get a private temporary directory instead
    (removed at exit; with ``resume`` it links to the run's ``last.pt`` and holds a copy of its
    finished stages) and their standard
    output is silenced, so a command needs no rank checks of its own.
    """
    from vbayes.train.distributed import env_info
    from vbayes.cli.runs import check_not_foreign, claim_out, release_out

    if not os.fspath(path):
        raise VBayesError("--out is empty: name the run directory")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise VBayesError(f"--out {out} exists and is not a directory")
    rank = env_info().rank
    if rank == 0:
        claim_out(out)
    else:
        check_not_foreign(out)
    try:
        _check_out(out, overwrite, resume)
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".probe-", delete=True)
        probe.close()
    except OSError as err:
        release_out(out)
        raise VBayesError(f"--out {out} cannot be written: {err.strerror or err}") from None
    except BaseException:
        release_out(out)
        raise
    if rank > 0:
        return _scratch_out(out, resume)
    return out


def _check_out(out: Path, overwrite: bool, resume: bool) -> None:
    if resume:
        from vbayes.train.checkpoint import find_last_checkpoint

        if overwrite:
            raise VBayesError("--resume and --overwrite contradict each other: pick one")
        from vbayes.cli.runs import find_stages

        if find_last_checkpoint(out) is None and find_stages(out) is None:
            raise VBayesError(f"--resume: nothing to resume in {out} (no last.pt)")
    elif out.is_dir() and not overwrite:
        if (out / "config.json").exists() or (out / "metrics.json").exists():
            raise VBayesError(f"--out {out} already holds a run; pass --overwrite to replace it")


def _scratch_out(out: Path, resume: bool) -> Path:
    """A private run directory for a torchrun rank > 0 (see :func:`prepare_out`)."""
    import atexit
    import shutil
    import sys

    scratch = Path(tempfile.mkdtemp(prefix="vbayes-rank-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    if resume:
        from vbayes.train.checkpoint import find_last_checkpoint
        from vbayes.cli.runs import find_stages

        last, stages = find_last_checkpoint(out), find_stages(out)
        if last is not None:
            (scratch / "last.pt").symlink_to(last.resolve())
        if stages is not None:  # a run in stages: this rank continues from a copy of the finished stages
            shutil.copytree(stages, scratch / stages.name, symlinks=True)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    return scratch
