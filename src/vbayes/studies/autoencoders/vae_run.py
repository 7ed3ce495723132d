"""Training, evaluating and drawing a VAE or AE on image data: the pieces of ``vbayes vae``/``ae``.

The command line, ``vbayes demo`` and the Bayesian-AE comparison share these functions::

    from vbayes import data
    from vbayes.studies.autoencoders.vae_run import AutoencoderOptions, train_autoencoder, autoencoder_figures

    images = data.load("mnist5k")
    run = train_autoencoder(images, AutoencoderOptions(model="vae", latent=2, epochs=30))
    print(run.metrics["test_nll"])                      # nats per example
    figures = autoencoder_figures(run, images)          # [(Figure, caption, name), ...]

For the Bernoulli likelihood the training batches are binarised afresh at every step (dynamic
binarisation) and the validation/test images once, with a fixed seed, so reported numbers are
stable. Every number is in nats per example.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from vbayes.data import ImageData, fixed_binarization
from vbayes.errors import VBayesError
from vbayes.losses import LIKELIHOODS, kl_weight, standard_normal_kl
from vbayes.models import AE, ARCHS, VAE
from vbayes.train import LossFn, StepContext, Trainer, TrainConfig, TrainResult, seed_everything

MODELS = ("vae", "ae")
TEST_BINARIZATION_SEED = 123  # frozen: the fixed binarisation of validation and test images


@dataclass
class AutoencoderOptions:
    """Everything that defines a VAE/AE run (stored as ``config.json``).

    ``warmup`` is the number of epochs over which the KL weight rises linearly to ``beta``;
    ``iw_samples`` the K of the importance-weighted test log-likelihood (VAE only);
    ``early_stopping`` a patience in epochs (None: off).
    """

    model: str = "vae"
    arch: str = "mlp"
    likelihood: str = "bernoulli"
    gaussian_std: float | None = None
    latent: int = 2
    hidden: int = 400
    epochs: int = 30
    batch_size: int = 100
    lr: float = 1e-3
    beta: float = 1.0
    warmup: int = 0
    iw_samples: int = 500
    iw_chunk: int = 100
    eval_batch_size: int = 100
    seed: int = 0
    device: str = "cpu"
    early_stopping: int | None = None
    progress: bool = True

    def check(self) -> None:
        """Raise :class:`VBayesError` naming the first invalid option."""
        choices = {"model": MODELS, "arch": ARCHS, "likelihood": LIKELIHOODS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise VBayesError(f"--{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("latent", "hidden", "epochs", "batch_size", "iw_samples", "iw_chunk", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise VBayesError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not (0 < self.lr < math.inf):
            raise VBayesError(f"--lr must be a finite number > 0, got {self.lr}")
        if not (0 <= self.beta < math.inf) or self.warmup < 0:
            raise VBayesError(f"--beta must be >= 0 and --warmup >= 0, got {self.beta}, {self.warmup}")
        if self.gaussian_std is not None and (self.likelihood != "gaussian" or not 0 < self.gaussian_std < math.inf):
            raise VBayesError("--gaussian-std needs --likelihood gaussian and a finite value > 0")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise VBayesError(f"--early-stopping must be >= 1 epochs, got {self.early_stopping}")


@dataclass
class AutoencoderRun:
    """Outcome of :func:`train_autoencoder`.

    ``model`` holds the best-on-validation weights; ``metrics`` the JSON-ready numbers;
    ``history`` one dict per epoch; ``x_test`` the test images as the model sees them
    (binarised once for the Bernoulli likelihood), ``(N, C, H, W)``.
    """

    options: AutoencoderOptions
    model: VAE | AE
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    result: TrainResult
    x_test: Tensor
    y_test: Tensor
    extra: dict[str, Any] = field(default_factory=dict)


def build_model(options: AutoencoderOptions, image_shape: tuple[int, int, int]) -> VAE | AE:
    """The untrained :class:`VAE` or :class:`AE` the options describe (a ``VBayesError`` if impossible)."""
    kwargs = dict(arch=options.arch, image_shape=image_shape, latent=options.latent, hidden=options.hidden,
                  likelihood=options.likelihood, gaussian_std=options.gaussian_std)
    try:
        return VAE(beta=options.beta, **kwargs) if options.model == "vae" else AE(**kwargs)  # type: ignore[arg-type]
    except ValueError as err:
        raise VBayesError(str(err)) from None


def eval_images(x: Tensor, likelihood: str) -> Tensor:
    """Validation/test images as scored: one fixed binarisation for Bernoulli, else unchanged."""
    return fixed_binarization(x, TEST_BINARIZATION_SEED) if likelihood == "bernoulli" else x


def vae_loss_fn(options: AutoencoderOptions) -> LossFn:
    """Trainer loss: mean negative ELBO with KL weight ``beta`` (linearly warmed up while training).

    Training batches are binarised afresh (Bernoulli likelihood); validation uses the full
    weight ``beta``. Logs the reconstruction NLL, the KL and the KL weight (nats per example).
    """
    binarize = options.likelihood == "bernoulli"

    def loss_fn(model: nn.Module, batch: tuple[Tensor, ...], ctx: StepContext) -> tuple[Tensor, dict[str, Any]]:
        x = batch[0]
        if ctx.training and binarize:
            x = torch.bernoulli(x)
        nll, kl = model.loss_terms(x)  # type: ignore[operator]
        weight = kl_weight(ctx.step, options.warmup * ctx.steps_per_epoch, options.beta) if ctx.training else options.beta
        nll_mean, kl_mean = nll.mean(), kl.mean()
        loss = nll_mean + kl_mean if weight == 1.0 else nll_mean + weight * kl_mean
        return loss, {"nll": nll_mean.detach(), "kl": kl_mean.detach(), "kl_weight": weight}

    return loss_fn


def ae_loss_fn(options: AutoencoderOptions) -> LossFn:
    """Trainer loss of the AE: mean reconstruction NLL (training batches binarised afresh)."""
    binarize = options.likelihood == "bernoulli"

    def loss_fn(model: nn.Module, batch: tuple[Tensor, ...], ctx: StepContext) -> tuple[Tensor, dict[str, Any]]:
        x = batch[0]
        if ctx.training and binarize:
            x = torch.bernoulli(x)
        return model.loss(x), {}  # type: ignore[operator]

    return loss_fn


@torch.no_grad()
def evaluate_vae(
    model: VAE, x: Tensor, k: int = 500, chunk: int = 100, batch_size: int = 100,
    elbo_samples: int = 10, generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Mean per-example ELBO, IWAE log-likelihood, reconstruction NLL and KL of images ``x``.

    Returns ``elbo`` (averaged over ``elbo_samples`` draws per example), ``nll`` (= minus the
    importance-weighted log p(x) with ``k`` samples; left out when ``k == 0``), ``recon_nll``
    (decoding the posterior mean) and ``kl``, all in nats per example.
    """
    model.eval()
    sums = {"elbo": 0.0, "nll": 0.0, "recon_nll": 0.0, "kl": 0.0} if k > 0 else {"elbo": 0.0, "recon_nll": 0.0, "kl": 0.0}
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        elbo = torch.stack([model.elbo(xb, generator) for _ in range(elbo_samples)]).mean(0)
        sums["elbo"] += float(elbo.sum())
        if k > 0:
            sums["nll"] -= float(model.iwae_log_likelihood(xb, k, chunk, generator).sum())
        sums["recon_nll"] += float(model.reconstruction_nll(xb).sum())
        mu, logvar = model.encode(xb)
        sums["kl"] += float(standard_normal_kl(mu, logvar).sum())
    return {key: value / x.shape[0] for key, value in sums.items()}


@torch.no_grad()
def evaluate_ae(model: AE, x: Tensor, batch_size: int = 100) -> dict[str, float]:
    """Mean reconstruction NLL ``recon_nll`` of images ``x`` (nats per example)."""
    model.eval()
    total = sum(float(model.reconstruction_nll(x[s : s + batch_size]).sum()) for s in range(0, x.shape[0], batch_size))
    return {"recon_nll": total / x.shape[0]}


def train_autoencoder(
    data: ImageData,
    options: AutoencoderOptions,
    out_dir: str | Path | None = None,
    run_config: dict[str, Any] | None = None,
    resume: bool | str | Path = False,
    callbacks: Sequence[Any] | None = None,
) -> AutoencoderRun:
    """Train the VAE/AE of ``options`` on ``data`` and evaluate it on the test split.

    ``out_dir`` receives the trainer's ``log.csv``, ``checkpoint.pt`` and ``last.pt``. The
    returned metrics hold (VAE) ``test_elbo``, ``test_nll``, ``test_recon_nll``, ``test_kl``,
    ``val_elbo``, ``val_recon_nll``, ``val_kl`` or (AE) ``test_recon_nll``, ``val_recon_nll``; plus
    ``iw_samples``, ``epochs``, ``best_epoch``, ``seconds_per_epoch``, ``train_examples``.
    ``resume`` continues training from a ``last.pt`` (True: ``out_dir/last.pt``, or its path, as
    :meth:`Trainer.fit <vbayes.train.Trainer.fit>`); ``callbacks`` are passed to the trainer.
    """
    options.check()
    seed_everything(options.seed)  # the initial weights depend on the seed only
    model = build_model(options, data.image_shape)
    x_val = eval_images(data.x_val, options.likelihood)
    x_test = eval_images(data.x_test, options.likelihood)
    loss_fn = vae_loss_fn(options) if options.model == "vae" else ae_loss_fn(options)
    config = TrainConfig(epochs=options.epochs, batch_size=options.batch_size, lr=options.lr, seed=options.seed,
                         device=options.device, early_stopping=options.early_stopping, progress=options.progress)
    trainer = Trainer(model, loss_fn, config, out_dir=out_dir, run_config=run_config or {"options": asdict(options)}, callbacks=callbacks)
    result = trainer.fit((data.x_train,), (x_val,), resume=resume)
    device = next(model.parameters()).device
    started = time.perf_counter()
    gen = torch.Generator(device=device).manual_seed(options.seed)
    metrics: dict[str, Any] = {}
    if isinstance(model, VAE):
        values = evaluate_vae(model, x_test.to(device), options.iw_samples, options.iw_chunk,
                              options.eval_batch_size, generator=gen)
        metrics.update({f"test_{key}": value for key, value in values.items()})
        val = evaluate_vae(model, x_val.to(device), 0, options.iw_chunk, options.eval_batch_size, generator=gen)
        metrics.update({f"val_{key}": value for key, value in val.items()})
        metrics["iw_samples"] = options.iw_samples
    else:
        for split, x in (("test", x_test), ("val", x_val)):
            metrics[f"{split}_recon_nll"] = evaluate_ae(model, x.to(device), options.eval_batch_size)["recon_nll"]
    if model.likelihood.learned:
        metrics["gaussian_std"] = float(torch.as_tensor(model.likelihood.std()).detach())
    metrics.update(
        epochs=result.epochs_run, best_epoch=result.best_epoch, stopped_early=result.stopped_early,
        seconds_per_epoch=result.seconds_per_epoch, eval_seconds=time.perf_counter() - started,
        train_examples=int(data.x_train.shape[0]), val_examples=int(x_val.shape[0]), test_examples=int(x_test.shape[0]),
    )  # fmt: skip
    return AutoencoderRun(options, model, metrics, result.history, result, x_test, data.y_test)
