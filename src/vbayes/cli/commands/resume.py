"""``vbayes resume --out DIR``: continue an interrupted training run from its last checkpoint.

The run's ``last.pt`` (in ``DIR`` or in the hidden ``DIR/.staging-*`` folder an interrupted
command leaves) records the command line that started it (``config["command"]``). This command
runs it again with ``--out DIR --resume``; the trainer then restores the model, optimizer, RNG
states and history and finishes the remaining epochs, ending exactly where an uninterrupted run
would have.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from vbayes.errors import VBayesError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "resume",
        help="continue an interrupted training run from its last checkpoint",
        description="Continue the run in --out from its last.pt with the command line that started it.",
    )
    parser.add_argument("--out", required=True, help="the run directory to continue")
    parser.set_defaults(func=run)


def _with_out(argv: list[str], out: str) -> list[str]:
    """``argv`` with its ``--out`` replaced by ``out`` and ``--overwrite``/``--resume`` dropped."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not (arg.startswith("--out=") or arg in ("--overwrite", "--resume")):
            kept.append(arg)
    return kept + ["--out", out, "--resume"]


def resume_argv(out: str | Path) -> list[str]:
    """The ``vbayes`` arguments that continue the run in ``out`` (checked, without running it)."""
    from vbayes.train.checkpoint import find_last_checkpoint, load_checkpoint
    from vbayes.cli import build_parser

    from vbayes.cli.runs import RESUME_RECORD, find_stages

    path, stages = find_last_checkpoint(out), find_stages(out)
    if stages is not None and (path is None or path.stat().st_mtime_ns < (stages / RESUME_RECORD).stat().st_mtime_ns):
        path = stages / RESUME_RECORD  # a run in stages (compare-ae, demo, uq) records its command there
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise VBayesError(f"{path} is unreadable ({err})") from None
    elif path is None:
        raise VBayesError(f"nothing to resume in {out}: no last.pt (did the run start training?)")
    else:
        config = load_checkpoint(path).get("config")
    command = config.get("command") if isinstance(config, dict) else None
    if not isinstance(command, str) or not command.startswith("vbayes "):
        raise VBayesError(f"{path} does not record the vbayes command that started it; "
                          "resume it from Python with Trainer.fit(resume=...)")  # fmt: skip
    try:
        argv = shlex.split(command)[1:]
    except ValueError as err:
        raise VBayesError(f"{path}: its recorded command cannot be parsed ({err})") from None
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    sub = commands.get(argv[0]) if argv else None
    if sub is None or argv[0] == "resume":
        raise VBayesError(f"{path} was written by an unknown command: {command!r}")
    if not any(a.dest == "resume" for a in sub._actions):
        raise VBayesError(f"vbayes {argv[0]} runs cannot be resumed (the command has no --resume)")
    return _with_out(argv, str(out))


def run(args: argparse.Namespace) -> int:
    """``vbayes resume``: print the command it continues, then run it."""
    from vbayes.cli import main

    argv = resume_argv(args.out)
    print(f"resuming: vbayes {shlex.join(argv)}", flush=True)
    return main(argv)
