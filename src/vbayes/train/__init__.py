"""Training: the model-agnostic :class:`Trainer` and what it is made of.

* :mod:`~vbayes.train.trainer`: ``Trainer``, ``TrainConfig``, ``StepContext``, ``TrainResult``;
* :mod:`~vbayes.train.types`, :mod:`~vbayes.train.steps`, :mod:`~vbayes.train.logs`: its
  configuration types, per-epoch bookkeeping and CSV log;
* :mod:`~vbayes.train.checkpoint`: weights-only checkpoints with RNG states (resume);
* :mod:`~vbayes.train.distributed`: DDP under torchrun.

Nothing here imports from :mod:`vbayes.studies` or :mod:`vbayes.cli`.
"""

from vbayes.train.trainer import Callback, LossFn, StepContext, TrainConfig, Trainer, TrainResult, seed_everything

__all__ = ["TrainConfig", "StepContext", "TrainResult", "Trainer", "LossFn", "Callback", "seed_everything"]
