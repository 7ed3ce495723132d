"""The ``vbayes`` command line.

Each sub-command lives in its own module under :mod:`vbayes.cli.commands` and exposes
``register(subparsers)``; it sets ``func=run`` on its parser, where ``run(args) -> int``.
User mistakes (:class:`~vbayes.errors.VBayesError`, bad options) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import NoReturn, Sequence

from vbayes.errors import TrainingDiverged, VBayesError


#: Every character ``str.splitlines`` breaks a line at.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ESCAPES = {ord(ch): ch.encode("unicode_escape").decode("ascii") for ch in LINE_BREAKS}


def one_line(text: object) -> str:
    """``str(text)`` with its line breaks escaped (``\\n``, ``\\r``, ``\\u2028`` ...), so it prints as one line."""
    return str(text).strip().translate(_ESCAPES)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single line on stderr and exit status 2.

    Line breaks in the message (e.g. in an argument the user typed) are escaped.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{one_line(self.prog)}: error: {one_line(message)}\n")


def discover(package: str, subparsers: argparse._SubParsersAction) -> None:
    """Import every module of ``package`` that defines ``register`` and let it add its parser."""
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every sub-command."""
    parser = OneLineParser(
        prog="vbayes",
        description="Variational Bayesian deep learning on PyTorch.",
    )
    from vbayes import __version__

    parser.add_argument("--version", action="version", version=f"vbayes {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    discover("vbayes.cli.commands", sub)
    return parser


THREADS_ENV = "VBAYES_THREADS"
"""Environment variable with the number of torch CPU threads a command uses (default 1)."""


def set_threads() -> int:
    """Give torch ``$VBAYES_THREADS`` CPU threads (default 1); returns the number.

    One thread by default: vbayes's networks are small, and on a machine whose cores are busy a
    second thread mostly waits for them. Measured on this project's 2-core machine with another
    job running: one VAE epoch on mnist5k took 0.24 s on one thread and 4.9 s on two. Commands
    with their own ``--threads`` option (the benchmarks) set it again.
    """
    import torch

    text = os.environ.get(THREADS_ENV, "1")
    try:
        threads = int(text)
    except ValueError:
        raise VBayesError(f"${THREADS_ENV} must be a whole number >= 1, got {text!r}") from None
    if threads < 1:
        raise VBayesError(f"${THREADS_ENV} must be a whole number >= 1, got {text!r}")
    torch.set_num_threads(threads)
    return threads


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vbayes`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        set_threads()
        return int(args.func(args) or 0)
    except VBayesError as err:
        print(f"vbayes {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"vbayes {args.command}: training diverged: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"vbayes {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        from vbayes.cli.runs import release_out

        release_out()  # every run directory this command locked


def run() -> NoReturn:
    """Console-script wrapper: ``sys.exit(main())``."""
    sys.exit(main())
