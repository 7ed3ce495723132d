"""A model-agnostic trainer: Adam on in-memory tensors, validation, checkpoints, resume, DDP.

The trainer knows nothing about the model. It calls ``loss_fn(model, batch, ctx)``, which
returns the per-example mean loss (a scalar tensor, e.g. the negative ELBO in nats per example)
and a dict of scalar logs (floats or 0-dim tensors)::

    import torch.nn.functional as F
    from vbayes import kl_divergence
    from vbayes.train import Trainer, TrainConfig

    def loss_fn(model, batch, ctx):                      # a Bayesian regression net
        x, y = batch                                     # (B, D), (B, 1)
        nll = F.gaussian_nll_loss(model(x), y, torch.ones_like(y), full=True)
        kl = kl_divergence(model) / ctx.dataset_size    # nats per example
        return nll + kl, {"nll": nll.detach(), "kl": kl.detach()}

    trainer = Trainer(model, loss_fn, TrainConfig(epochs=30, seed=0), out_dir="runs/bnn")
    result = trainer.fit((x_train, y_train), (x_val, y_val))   # trainer.model: best weights

Every epoch it shuffles the training set with a dedicated, seeded ``torch.Generator`` (seeded
per epoch, as ``DistributedSampler`` does), validates, keeps the best-on-validation weights,
appends a row to ``log.csv`` and writes ``last.pt`` / ``checkpoint.pt`` atomically (see
:mod:`vbayes.train.checkpoint`). ``fit(resume=True)`` continues from ``last.pt`` and ends with exactly
the weights an uninterrupted run would have reached. Under ``torchrun`` (``WORLD_SIZE > 1``) the
model is wrapped in ``DistributedDataParallel`` and each global batch of ``batch_size`` examples
is split across the ranks; only rank 0 writes files and shows progress.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from vbayes.train.checkpoint import get_rng_state, load_checkpoint, plain_config, save_checkpoint, set_rng_state
from vbayes.train.distributed import DistInfo, barrier, init_distributed, shard_indices
from vbayes.errors import DataError, TrainingDiverged, VBayesError
from vbayes.train.logs import write_log_csv
from vbayes.train.steps import EpochAccumulator, check_tensors, epoch_permutation
from vbayes.train.types import Callback, LossFn, StepContext, TrainConfig, TrainResult, seed_everything

__all__ = ["TrainConfig", "StepContext", "TrainResult", "Trainer", "LossFn", "Callback", "seed_everything"]

#: What a ``last.pt`` must hold to be resumed.
RESUME_KEYS = ("dataset_size", "model", "optimizer", "epoch", "step", "best_val", "best_epoch", "best_model",
               "bad_epochs", "stopped_early", "history", "rng")


class _LossModule(nn.Module):
    """Runs ``loss_fn`` inside ``forward`` so DDP syncs gradients whatever methods it calls."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.ctx: StepContext | None = None

    def forward(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, dict[str, Any]]:
        assert self.ctx is not None
        return self.loss_fn(self.model, batch, self.ctx)


def _epoch_row(epoch: int, train_loss: float, train_logs: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The log row of 0-based ``epoch`` before validation; refuses log keys that clash with its columns."""
    row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": None, "seconds": seconds}
    clash = sorted(k for k in train_logs if k in row or k.startswith("val_"))
    if clash:
        raise ValueError(f"loss_fn log keys {clash} clash with the trainer's columns (epoch, train_loss, "
                         "val_loss, seconds, val_*); rename them")  # fmt: skip
    row.update(train_logs)
    return row


class Trainer:
    """Fits ``model`` by minimising ``loss_fn`` with Adam; see the module docstring.

    ``out_dir`` (optional) receives ``log.csv``, ``last.pt`` and ``checkpoint.pt``;
    ``run_config`` (JSON-like) is stored in both checkpoints; ``callbacks`` get
    ``on_epoch_end(trainer, row)``; ``scheduler`` (optional) builds an LR scheduler from the
    optimizer, stepped once per epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        run_config: dict[str, Any] | None = None,
        callbacks: Sequence[Any] | None = None,
        scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    ) -> None:
        self.config = config
        self.dist: DistInfo
        self.dist, self.device = init_distributed(config.device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_config = plain_config(run_config or {})
        self.callbacks = list(callbacks or [])
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = scheduler(self.optimizer) if scheduler is not None else None
        self.generator = torch.Generator()
        self.should_stop = False
        self._state: dict[str, Any] = {}

    # ------------------------------------------------------------------ public API
    @property
    def last_path(self) -> Path | None:
        """``out_dir / "last.pt"`` (None without an output directory)."""
        return self.out_dir / "last.pt" if self.out_dir is not None else None

    def fit(
        self,
        train: tuple[Tensor, ...],
        val: tuple[Tensor, ...] | None = None,
        resume: bool | str | Path = False,
    ) -> TrainResult:
        """Train on ``train`` (tensors sharing their first dimension N), validating on ``val``.

        With ``resume=True`` training continues from ``out_dir/last.pt`` (or from the ``last.pt``
        path given as ``resume``, e.g. :func:`~vbayes.train.checkpoint.find_last_checkpoint`'s). Afterwards
        ``self.model`` holds the best-on-validation weights. Raises
        :class:`~vbayes.errors.TrainingDiverged` on a NaN/infinite loss (files keep the last
        good epoch) and :class:`~vbayes.errors.DataError` for empty, mismatched or non-finite data.
        """
        cfg = self.config
        train = check_tensors(train, "training")
        val = check_tensors(val, "validation") if val is not None else None
        train = tuple(t.to(self.device) for t in train)
        val = tuple(t.to(self.device) for t in val) if val is not None else None
        n_train = train[0].shape[0]
        spe = math.ceil(n_train / cfg.batch_size)
        self._state = {
            "epoch": 0, "step": 0, "best_val": math.inf, "best_epoch": 0, "best_model": None,
            "bad_epochs": 0, "stopped_early": False, "history": [],
        }  # fmt: skip
        if resume is not False:
            self._load_last(n_train, None if resume is True else Path(resume))
        else:
            seed_everything(cfg.seed + self.dist.rank)
        st = self._state
        runner: nn.Module = _LossModule(self.model, self.loss_fn)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            runner = nn.parallel.DistributedDataParallel(runner, device_ids=ids, static_graph=True)
        bar = self._progress_bar(spe * cfg.epochs, st["step"])
        try:
            while st["epoch"] < cfg.epochs and not st["stopped_early"]:
                row = self._run_epoch(runner, train, val, spe, bar)
                self._end_epoch(row)
        finally:
            if bar is not None:
                bar.close()
        if st["best_model"] is not None:
            self.model.load_state_dict(st["best_model"])
        barrier()
        return self._result()

    def evaluate(self, data: tuple[Tensor, ...], epoch: int = 0) -> tuple[float, dict[str, float]]:
        """Mean loss and logs over ``data`` (no gradients, ``ctx.training=False``), all ranks pooled."""
        cfg, info = self.config, self.dist
        n = data[0].shape[0]
        lo, hi = n * info.rank // info.world_size, n * (info.rank + 1) // info.world_size
        acc = EpochAccumulator(math.ceil(max(hi - lo, 1) / cfg.batch_size), self.device)
        n_train = self._state.get("n_train", n)
        ctx = StepContext(epoch, self._state.get("step", 0), 0, 0, False, n_train, info.rank, info.world_size)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            for i, start in enumerate(range(lo, hi, cfg.batch_size)):
                batch = tuple(t[start : min(start + cfg.batch_size, hi)] for t in data)
                loss, logs = self.loss_fn(self.model, batch, ctx)
                acc.add(i, loss, logs, batch[0].shape[0])
        self.model.train(was_training)
        mean, logs, _ = acc.reduce()
        return mean, logs

    # ------------------------------------------------------------------ one epoch
    def _run_epoch(
        self, runner: nn.Module, train: tuple[Tensor, ...], val: tuple[Tensor, ...] | None, spe: int, bar: Any
    ) -> dict[str, Any]:
        """One pass over ``train`` (``spe`` steps) and the validation: the epoch's log row."""
        st = self._state
        n_train = train[0].shape[0]
        st["n_train"] = n_train
        epoch = st["epoch"]
        perm = epoch_permutation(n_train, self.config.seed, epoch, self.generator).to(self.device)
        acc = EpochAccumulator(spe, self.device)
        self.model.train()
        start = time.perf_counter()
        self._train_steps(runner, train, perm, acc, spe, bar)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        train_loss, train_logs, bad = acc.reduce()
        if bad is not None:
            self._diverged(f"loss became {bad[1]}", epoch, bad[0], spe)
        row = _epoch_row(epoch, train_loss, train_logs, seconds)
        if val is not None:
            self._validate(val, row, epoch, spe)
        if bar is not None:
            bar.set_postfix(epoch=epoch + 1, loss=f"{train_loss:.4g}", val=f"{math.nan if row['val_loss'] is None else row['val_loss']:.4g}")
        return row

    def _train_steps(self, runner: nn.Module, train: tuple[Tensor, ...], perm: Tensor, acc: EpochAccumulator,
                     spe: int, bar: Any) -> None:
        """The epoch's ``spe`` optimiser steps over ``train`` in the order ``perm``, logged into ``acc``."""
        cfg, info, st = self.config, self.dist, self._state
        epoch, n_train, total = st["epoch"], train[0].shape[0], spe * cfg.epochs
        last_refresh = time.perf_counter()
        for s in range(spe):
            idx, weight = shard_indices(perm[s * cfg.batch_size : (s + 1) * cfg.batch_size], info.rank, info.world_size)
            batch = tuple(t[idx] for t in train)
            ctx = StepContext(epoch, st["step"], spe, total, True, n_train, info.rank, info.world_size)
            loss, logs = self._step(runner, batch, ctx, weight, s)
            acc.add(s, loss, logs, idx.shape[0] if weight > 0 else 0)
            st["step"] += 1
            if bar is not None:
                bar.update(1)
                now = time.perf_counter()
                if now - last_refresh > 0.5:
                    last_refresh = now
                    bar.set_postfix(epoch=epoch + 1, loss=f"{acc.running_mean(s):.4g}", refresh=False)

    def _step(self, runner: nn.Module, batch: tuple[Tensor, ...], ctx: StepContext, weight: float,
              s: int) -> tuple[Tensor, dict[str, Any]]:
        """Step ``s`` of the epoch on ``batch`` (its loss scaled by ``weight``); returns ``loss_fn``'s loss and logs."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        try:
            if isinstance(runner, _LossModule):
                loss, logs = self.loss_fn(self.model, batch, ctx)
            else:
                runner.module.ctx = ctx
                loss, logs = runner(batch)
        except (ValueError, RuntimeError) as err:  # e.g. a distribution refusing NaN parameters
            if all(bool(torch.isfinite(p).all()) for p in params):
                raise
            self._diverged(f"weights became non-finite (the loss raised {type(err).__name__})", ctx.epoch, s,
                           ctx.steps_per_epoch)
        check_each_step = not self.dist.enabled and self.device.type == "cpu"
        if check_each_step and not math.isfinite(loss.item()):
            self._diverged(f"loss became {loss.item()}", ctx.epoch, s, ctx.steps_per_epoch)
        self.optimizer.zero_grad(set_to_none=True)
        (loss if weight == 1.0 else loss * weight).backward()
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.optimizer.step()
        return loss, logs

    def _validate(self, val: tuple[Tensor, ...], row: dict[str, Any], epoch: int, spe: int) -> None:
        """Add the validation loss and logs (``val_*``) to ``row``."""
        val_loss, val_logs = self.evaluate(val, epoch)
        if not math.isfinite(val_loss):
            self._diverged(f"validation loss became {val_loss}", epoch, spe - 1, spe)
        row["val_loss"] = val_loss
        row.update({f"val_{k}": v for k, v in val_logs.items()})

    def _end_epoch(self, row: dict[str, Any]) -> None:
        cfg, st = self.config, self._state
        monitor = row["val_loss"] if row["val_loss"] is not None else row["train_loss"]
        st["epoch"] += 1
        if monitor < st["best_val"]:
            st["best_val"], st["best_epoch"], st["bad_epochs"] = monitor, st["epoch"], 0
            st["best_model"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self._save_best()
        else:
            st["bad_epochs"] += 1
        if self.scheduler is not None:
            self.scheduler.step()
        st["history"].append(row)
        if self.out_dir is not None and self.dist.is_main:
            write_log_csv(self.out_dir / "log.csv", st["history"])
        self.should_stop = False
        for callback in self.callbacks:
            hook = getattr(callback, "on_epoch_end", None)
            if hook is not None:
                hook(self, row)
        patience = cfg.early_stopping
        if self.should_stop or (patience is not None and st["bad_epochs"] >= patience and st["epoch"] < cfg.epochs):
            st["stopped_early"] = True
        self._save_last()

    # ------------------------------------------------------------------ checkpoints
    def _save_best(self) -> None:
        st = self._state
        if self.out_dir is None or not self.dist.is_main:
            return
        save_checkpoint(
            self.out_dir / "checkpoint.pt",
            {"kind": "best", "model": st["best_model"], "epoch": st["best_epoch"],
             "val_loss": st["best_val"], "config": self.run_config},
        )  # fmt: skip

    def _save_last(self) -> None:
        st = self._state
        rng = get_rng_state(self.generator)
        if self.dist.enabled:  # every rank's generators, so a resumed DDP run draws the same noise
            gathered: list[Any] = [None] * self.dist.world_size
            torch.distributed.all_gather_object(gathered, rng)
            rngs = gathered
        else:
            rngs = [rng]
        if self.out_dir is None or not self.dist.is_main:
            return
        payload = {k: st[k] for k in ("epoch", "step", "best_val", "best_epoch", "best_model", "bad_epochs")}
        payload.update(
            kind="last", model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else None,
            stopped_early=st["stopped_early"], history=st["history"], rng=rngs, config=self.run_config,
            train_config=asdict(self.config), world_size=self.dist.world_size, dataset_size=st["n_train"],
        )  # fmt: skip
        save_checkpoint(self.out_dir / "last.pt", payload)

    def _load_last(self, n_train: int, path: Path | None) -> None:
        path = path or self.last_path
        if path is None:
            raise ValueError("Trainer.fit(resume=True) needs an out_dir holding last.pt")
        if not path.exists():
            raise VBayesError(f"nothing to resume in {path.parent}: no last.pt (was the run started?)")
        data = load_checkpoint(path, map_location=self.device)
        if data.get("kind") != "last":
            raise VBayesError(f"checkpoint {path} is not a resumable last.pt")
        missing = [k for k in RESUME_KEYS if k not in data]
        if missing:
            raise VBayesError(f"checkpoint {path} is not a complete last.pt (no {', '.join(missing)}); "
                              "start the run afresh with --overwrite")  # fmt: skip
        if data["dataset_size"] != n_train:
            raise DataError(f"cannot resume {path}: it was trained on {data['dataset_size']} examples, not {n_train}")
        try:
            self.model.load_state_dict(data["model"])
            self.optimizer.load_state_dict(data["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            msg = str(err).strip().splitlines()[0]
            raise VBayesError(f"cannot resume {path}: it does not fit this model ({msg})") from None
        if self.scheduler is not None and data.get("scheduler") is not None:
            self.scheduler.load_state_dict(data["scheduler"])
        for key in ("epoch", "step", "best_val", "best_epoch", "best_model", "bad_epochs", "stopped_early", "history"):
            self._state[key] = data[key]
        rngs = data["rng"]
        rank = self.dist.rank
        if rank < len(rngs):
            set_rng_state(rngs[rank], self.generator)
        else:  # resumed with more processes than before: fresh, distinct streams for new ranks
            seed_everything(self.config.seed + rank + 7919 * self._state["epoch"])

    # ------------------------------------------------------------------ helpers
    def _diverged(self, reason: str, epoch: int, step_in_epoch: int, spe: int) -> None:
        """Restore the best weights so far and raise :class:`TrainingDiverged` (files are untouched)."""
        st = self._state
        global_step = epoch * spe + step_in_epoch
        if st.get("best_model") is not None:
            self.model.load_state_dict(st["best_model"])
        kept = f"; last good checkpoint: {self.last_path} (epoch {st['epoch']})" if st["epoch"] and self.out_dir else ""
        raise TrainingDiverged(
            f"{reason} at epoch {epoch + 1}, step {step_in_epoch + 1}/{spe} "
            f"(global step {global_step}){kept}"
        )

    def _progress_bar(self, total: int, initial: int) -> Any:
        if not self.config.progress or not self.dist.is_main:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True, leave=False)

    def _result(self) -> TrainResult:
        st = self._state
        history = st["history"]
        seconds = [row["seconds"] for row in history]
        return TrainResult(
            best_epoch=st["best_epoch"],
            best_val=st["best_val"],
            history=history,
            seconds_per_epoch=sum(seconds) / len(seconds) if seconds else 0.0,
            epochs_run=len(history),
            stopped_early=st["stopped_early"],
        )
