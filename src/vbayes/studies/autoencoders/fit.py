"""Training a Bayesian auto-encoder with the model-agnostic :class:`~vbayes.train.Trainer`.

The loss per mini-batch is the per-example negative ELBO of the weights, the mean
reconstruction NLL plus KL(q(w) || p(w)) / N with N the size of the training set
(``ctx.dataset_size``). For a Bernoulli likelihood each training batch is binarised afresh
(dynamic binarisation) and the validation set once, with a fixed seed, so that the validation
loss that picks the best epoch is stable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from vbayes.data import binarize
from vbayes.train import StepContext, TrainConfig, Trainer, TrainResult
from vbayes.studies.autoencoders.vae_run import eval_images


def bernoulli_targets(model: nn.Module) -> bool:
    """Whether ``model`` reconstructs binary pixels (``model.likelihood.kind == "bernoulli"``)."""
    return getattr(getattr(model, "likelihood", None), "kind", "bernoulli") == "bernoulli"


def bae_loss(model: nn.Module, batch: tuple[Tensor, ...], ctx: StepContext) -> tuple[Tensor, dict[str, Any]]:
    """Trainer loss of a :class:`~vbayes.models.bae.BayesianAE`: its negative ELBO per example, the mean
    one-weight-sample reconstruction NLL (``sampled_reconstruction_nll``) + KL(q(w) || p(w)) / N.

    ``batch[0]`` ``(B, C, H, W)`` pixels in [0, 1] (training batches are binarised here for a
    Bernoulli likelihood; validation batches arrive already binarised). Logs ``nll`` and
    ``kl_per_example`` (nats per example).
    """
    (x,) = batch[:1]
    if ctx.training and bernoulli_targets(model):
        x = binarize(x)
    nll = model.sampled_reconstruction_nll(x).mean()  # type: ignore[operator]
    kl = model.kl_per_example(ctx.dataset_size)  # type: ignore[operator]
    return nll + kl, {"nll": nll.detach(), "kl_per_example": kl.detach()}


def fit_bae(
    model: nn.Module,
    data: Any,
    config: TrainConfig,
    out_dir: str | Path | None = None,
    run_config: dict[str, Any] | None = None,
    resume: bool | str | Path = False,
    callbacks: Sequence[Any] | None = None,
) -> TrainResult:
    """Fit a Bayesian AE on ``data.x_train``, validating on ``data.x_val``.

    ``resume`` continues from a trainer's ``last.pt`` (True: ``out_dir/last.pt``, or its path);
    ``callbacks`` go to the :class:`~vbayes.train.Trainer`.

    The validation images are binarised once, with the same fixed seed as the VAE's and AE's
    (:func:`vbayes.studies.autoencoders.vae_run.eval_images`), for a Bernoulli likelihood.

    ``data`` is an :class:`~vbayes.data.ImageData`; ``out_dir`` receives ``log.csv``, ``last.pt``
    and ``checkpoint.pt`` (the best-on-validation weights). Returns the trainer's result; the
    model holds the best weights afterwards.
    """
    x_val = eval_targets(model, data.x_val)
    trainer = Trainer(model, bae_loss, config, out_dir=out_dir, run_config=run_config,
                      callbacks=list(callbacks) if callbacks else None)
    return trainer.fit((data.x_train,), (x_val,), resume=resume)


def eval_targets(model: nn.Module, x: Tensor) -> Tensor:
    """Scored images ``x``: one fixed binarisation (the VAE's and AE's) for Bernoulli, else ``x``."""
    return eval_images(x, "bernoulli" if bernoulli_targets(model) else "gaussian")


@torch.no_grad()
def bae_test_metrics(
    model: nn.Module, x_test: Tensor, dataset_size: int, n_samples: int = 100, nll_samples: int = 10
) -> dict[str, float]:
    """Test metrics of a trained Bayesian AE (nats per example unless stated).

    ``test_recon_nll``: E_q(w)[-log p(x | w)] over ``nll_samples`` weight samples, on the fixed
    test targets; ``kl_per_example``: KL(q(w) || p(w)) / N (N = ``dataset_size``);
    ``test_elbo``: -(test_recon_nll + kl_per_example), the per-example ELBO a test set of the
    training set's size would get (negative); ``mean_predictive_std``: the per-pixel standard
    deviation of the reconstructions over weight samples, averaged over pixels and test inputs
    (pixel units) over ``n_samples`` = S weight samples; ``predictive_samples``: S.
    """
    target = eval_targets(model, x_test)
    was_training = model.training
    model.eval()
    try:
        nll = float(model.expected_nll(target, nll_samples).mean())  # type: ignore[operator]
        kl = float(model.kl_per_example(dataset_size))  # type: ignore[operator]
        summary = model.sample_reconstructions(x_test, n_samples, keep_codes=0)  # type: ignore[operator]
    finally:
        model.train(was_training)
    return {
        "test_recon_nll": nll,
        "kl_per_example": kl,
        "test_elbo": -(nll + kl),
        "mean_predictive_std": float(summary.std.mean()),
        "predictive_samples": int(n_samples),
    }
