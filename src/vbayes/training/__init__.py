"""Internals of :mod:`vbayes.train`: per-epoch bookkeeping and the CSV log.

Import the trainer from :mod:`vbayes.train` (``Trainer``, ``TrainConfig``, ``StepContext``,
``TrainResult``).
"""
