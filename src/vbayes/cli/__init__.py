"""The ``vbayes`` command line: the entry point (:mod:`~vbayes.cli.entry`), run directories
(:mod:`~vbayes.cli.runs`), ``--config`` files (:mod:`~vbayes.cli.config`), the sub-commands
(:mod:`vbayes.cli.commands`, one file each, discovered) and ``vbayes bench`` benchmarks
(:mod:`vbayes.cli.bench`, one file each). Standalone comparison scripts that import only the
public library live in the repository's ``benchmarks/`` folder.
"""

from vbayes.cli.entry import OneLineParser, build_parser, discover, main, one_line, run

__all__ = ["OneLineParser", "build_parser", "discover", "main", "one_line", "run"]
