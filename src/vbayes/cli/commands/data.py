"""``vbayes data download mnist|fashion-mnist --to DIR``: fetch the full IDX data sets.

The four ``.gz`` files come from the standard mirrors (tried in order, or ``--mirror URL``),
each checked against its published SHA-256 and written atomically; any failure prints one
line and exits 2 with nothing left behind. On success the command prints the ``--data-dir``
to give ``vbayes vae --data mnist`` (and the other commands).
"""

from __future__ import annotations

import argparse
import shlex

from vbayes.cli import OneLineParser


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="data sets: `vbayes data download mnist --to DIR`")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=OneLineParser)
    sub.required = True
    down = sub.add_parser(
        "download",
        help="download MNIST or Fashion-MNIST (the four IDX .gz files, SHA-256 checked)",
        description="Download the four IDX files of MNIST or Fashion-MNIST from the standard mirrors "
        "(tried in order), check each against its published SHA-256 and write it atomically.",
    )
    down.add_argument("name", choices=["mnist", "fashion-mnist"], help="the data set")
    down.add_argument("--to", required=True, metavar="DIR", help="directory to write the files into")
    down.add_argument("--mirror", action="append", metavar="URL",
                      help="URL prefix to fetch the files from instead of the standard mirrors "
                           "(repeat to try several in order)")  # fmt: skip
    down.add_argument("--timeout", type=float, default=60.0, help="seconds per connection (default 60)")
    down.add_argument("--no-progress", action="store_true", help="no progress bars")
    down.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``vbayes data download``: download, then print the ``--data-dir`` to use."""
    from vbayes.data.download import download

    root = download(args.name, args.to, args.mirror, progress=not args.no_progress, timeout=args.timeout)
    print(f"{args.name}: the four IDX files are in {root}")
    print(f"use: --data {args.name} --data-dir {shlex.quote(str(root))}")
    return 0
