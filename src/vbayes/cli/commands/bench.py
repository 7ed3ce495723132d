"""``vbayes bench NAME``: benchmarks that print ratios measured in one process."""

from __future__ import annotations

import argparse

from vbayes.cli import OneLineParser, discover


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark (see `vbayes bench -h`)")
    sub = parser.add_subparsers(dest="bench", metavar="NAME", parser_class=OneLineParser)
    sub.required = True
    discover("vbayes.cli.bench", sub)
