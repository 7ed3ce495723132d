"""User-facing errors.

A :class:`VBayesError` is a mistake of the user's (bad option, missing file, malformed data).
The command line prints its message on one line and exits with status 2; library users get a
``ValueError`` subclass they can catch.
"""

from __future__ import annotations


class VBayesError(ValueError):
    """A user error with a one-line, self-explaining message."""


class DataError(VBayesError):
    """A data set is unknown, missing, malformed or contains non-finite values."""


class CheckpointError(VBayesError):
    """A checkpoint file is truncated, corrupted, foreign or of an unknown format version."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite during training (exit status 1 from the CLI)."""
