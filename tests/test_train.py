"""The model-agnostic trainer: exact repeatability, batching, best weights, early stopping, logs."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from test_train_common import curves, make_model, mse_loss, regression_data, same_weights, train_run
from vbayes.train.checkpoint import load_checkpoint
from vbayes.errors import DataError, TrainingDiverged
from vbayes.train import StepContext, TrainConfig, Trainer


def test_seed_repeats_exactly_and_other_seed_differs() -> None:
    m1, r1 = train_run(None, 3)
    m2, r2 = train_run(None, 3)
    assert same_weights(m1, m2)
    assert curves(r1) == curves(r2)
    m3, r3 = train_run(None, 3, seed=8)
    assert not same_weights(m1, m3)
    assert curves(r1) != curves(r3)


def test_learns_and_keeps_best_weights(tmp_path: Path) -> None:
    model, result = train_run(tmp_path, 12)
    train_losses = [row["train_loss"] for row in result.history]
    assert train_losses[-1] < 0.5 * train_losses[0]
    vals = [row["val_loss"] for row in result.history]
    assert result.best_val == min(vals)
    assert result.best_epoch == vals.index(min(vals)) + 1
    assert result.epochs_run == 12 and not result.stopped_early
    # the model holds the best weights: its validation loss is best_val, and checkpoint.pt has them
    _, val = regression_data()
    model.eval()
    with torch.no_grad():
        val_mse = float(((model(val[0]) - val[1]) ** 2).mean())
    assert val_mse == pytest.approx(result.best_val, rel=1e-6)
    best = load_checkpoint(tmp_path / "checkpoint.pt")
    assert best["kind"] == "best" and best["epoch"] == result.best_epoch
    assert same_weights(model, best["model"])
    assert best["config"] == {"test": "regression", "epochs": 12}
    assert result.seconds_per_epoch == pytest.approx(sum(r["seconds"] for r in result.history) / 12)


def test_log_csv_matches_history(tmp_path: Path) -> None:
    _, result = train_run(tmp_path, 3)
    with open(tmp_path / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:4] == ["epoch", "train_loss", "val_loss", "seconds"]
    assert {"mae", "val_mae"} <= set(rows[0])
    assert len(rows) == 3
    for row, hist in zip(rows, result.history):
        assert int(row["epoch"]) == hist["epoch"]
        for key in ("train_loss", "val_loss", "mae", "val_mae"):
            assert float(row[key]) == hist[key]  # repr round-trips exactly


def test_each_epoch_visits_every_example_once_and_context_is_right() -> None:
    n, batch = 50, 8
    seen: list[list[int]] = []
    contexts: list[StepContext] = []
    model = nn.Linear(1, 1)

    def loss_fn(m: nn.Module, b: tuple[Tensor, ...], ctx: StepContext) -> tuple[Tensor, dict[str, Any]]:
        (idx,) = b
        if ctx.training:
            if ctx.step % ctx.steps_per_epoch == 0:
                seen.append([])
            seen[-1].extend(idx.tolist())
            contexts.append(ctx)
        return m(idx.float()[:, None]).pow(2).mean(), {}

    Trainer(model, loss_fn, TrainConfig(epochs=3, batch_size=batch, progress=False)).fit((torch.arange(n),))
    assert len(seen) == 3
    for order in seen:
        assert sorted(order) == list(range(n))
    assert seen[0] != seen[1]  # reshuffled each epoch
    assert [c.step for c in contexts] == list(range(3 * 7))
    assert {(c.steps_per_epoch, c.total_steps, c.dataset_size) for c in contexts} == {(7, 21, n)}
    assert [c.epoch for c in contexts] == [e for e in range(3) for _ in range(7)]


def test_validation_is_example_weighted_mean_without_grad() -> None:
    # per-example "loss" = the example's value; the validation loss must be the plain mean
    values = torch.arange(1.0, 12.0)  # 11 examples, batches of 4, 4, 3
    grad_enabled: list[bool] = []
    model = nn.Linear(1, 1)

    def loss_fn(m: nn.Module, b: tuple[Tensor, ...], ctx: StepContext) -> tuple[Tensor, dict[str, Any]]:
        (v,) = b
        if not ctx.training:
            grad_enabled.append(torch.is_grad_enabled())
            return v.mean(), {"double": float(2 * v.mean())}
        return m(v[:, None]).pow(2).mean() * 1e-3, {"double": 0.0}

    trainer = Trainer(model, loss_fn, TrainConfig(epochs=1, batch_size=4, progress=False))
    result = trainer.fit((values,), (values,))
    assert result.history[0]["val_loss"] == pytest.approx(6.0, abs=1e-12)
    assert result.history[0]["val_double"] == pytest.approx(12.0, abs=1e-12)
    assert grad_enabled == [False, False, False]


class _ValSchedule:
    """Validation loss follows a fixed schedule by epoch; records the weights after each epoch."""

    def __init__(self, schedule: list[float]) -> None:
        self.schedule = schedule
        self.weights: list[dict[str, Tensor]] = []

    def loss(self, m: nn.Module, b: tuple[Tensor, ...], ctx: StepContext) -> tuple[Tensor, dict[str, Any]]:
        x, y = b
        out = ((m(x) - y) ** 2).mean()
        return (out if ctx.training else out * 0 + self.schedule[ctx.epoch]), {}

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        self.weights.append({k: v.clone() for k, v in trainer.model.state_dict().items()})


def test_early_stopping_restores_best_epoch(tmp_path: Path) -> None:
    sched = _ValSchedule([5.0, 3.0, 2.0, 2.5, 2.0, 1.0, 0.5, 0.1])
    train, val = regression_data()
    model = make_model()
    cfg = TrainConfig(epochs=8, batch_size=32, early_stopping=2, progress=False)
    result = Trainer(model, sched.loss, cfg, out_dir=tmp_path, callbacks=[sched]).fit(train, val)
    assert result.stopped_early and result.epochs_run == 5
    assert result.best_epoch == 3 and result.best_val == 2.0  # 2.0 again at epoch 5 is not better
    assert same_weights(model, sched.weights[2])
    assert not same_weights(model, sched.weights[4])
    assert load_checkpoint(tmp_path / "last.pt")["stopped_early"] is True


def test_without_validation_monitors_training_loss() -> None:
    train, _ = regression_data()
    model = make_model(dropout=0.0)
    result = Trainer(model, mse_loss, TrainConfig(epochs=4, batch_size=64, progress=False)).fit(train)
    losses = [row["train_loss"] for row in result.history]
    assert all(row["val_loss"] is None for row in result.history)
    assert result.best_val == min(losses) and result.best_epoch == losses.index(min(losses)) + 1


def test_grad_clip_bounds_the_update() -> None:
    # one SGD-like step of Adam is lr * sign-ish; instead check clip_grad_norm_ saw a clipped norm
    norms: list[float] = []
    model = nn.Linear(3, 1)

    def loss_fn(m: nn.Module, b: tuple[Tensor, ...], ctx: StepContext) -> tuple[Tensor, dict[str, Any]]:
        (x,) = b
        if m.weight.grad is not None:
            norms.append(float(m.weight.grad.norm()))
        return (m(x) * 1e4).pow(2).mean(), {}

    x = torch.randn(20, 3)
    Trainer(model, loss_fn, TrainConfig(epochs=1, batch_size=5, grad_clip=1.0, progress=False)).fit((x,))
    # zero_grad(set_to_none) runs after the forward, so the forward sees the previous clipped grads
    assert norms and max(norms) <= 1.0 + 1e-5


def test_nan_loss_raises_naming_epoch_and_step_and_keeps_last_good(tmp_path: Path) -> None:
    train, val = regression_data()  # 192 examples / 32 = 6 steps per epoch

    def loss_fn(m: nn.Module, b: tuple[Tensor, ...], ctx: StepContext) -> tuple[Tensor, dict[str, Any]]:
        loss, logs = mse_loss(m, b, ctx)
        return (loss * math.nan if ctx.training and ctx.step == 8 else loss), logs

    model = make_model()
    trainer = Trainer(model, loss_fn, TrainConfig(epochs=4, batch_size=32, progress=False), out_dir=tmp_path)
    with pytest.raises(TrainingDiverged) as info:
        trainer.fit(train, val)
    message = str(info.value)
    assert "epoch 2" in message and "step 3/6" in message and "global step 8" in message and "\n" not in message
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 1 and len(last["history"]) == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert same_weights(model, load_checkpoint(tmp_path / "checkpoint.pt")["model"])


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ((torch.zeros(0, 3),), "empty"),
        ((torch.zeros(5, 3), torch.zeros(4)), "tensor 1 has 4 examples"),
        ((torch.tensor([[1.0], [math.nan]]),), "NaN or infinite"),
        ((torch.tensor([[1.0], [math.inf]]),), "NaN or infinite"),
        ([], "non-empty tuple"),
        (torch.zeros(3, 2), "non-empty tuple"),
        ((torch.zeros(3), [1, 2, 3]), "element 1 is a list"),
    ],
)
def test_bad_data_is_a_one_line_data_error(data: Any, fragment: str) -> None:
    trainer = Trainer(nn.Linear(3, 1), mse_loss, TrainConfig(epochs=1, progress=False))
    with pytest.raises(DataError, match=fragment) as info:
        trainer.fit(data)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs", [{"epochs": 0}, {"batch_size": 0}, {"lr": 0.0}, {"lr": math.inf}, {"early_stopping": 0},
               {"grad_clip": -1.0}, {"weight_decay": -0.1}]  # fmt: skip
)
def test_train_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TrainConfig(**kwargs)


def test_progress_bar_runs(capsys: pytest.CaptureFixture[str]) -> None:
    train, val = regression_data()
    cfg = TrainConfig(epochs=2, batch_size=64, progress=True)
    Trainer(make_model(), mse_loss, cfg).fit(train, val)
    assert "train" in capsys.readouterr().err


class _NaNGrad(torch.autograd.Function):
    """Identity forward, NaN gradient backward: finite loss, poisoned weights."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad * math.nan


def test_loss_raising_on_poisoned_weights_is_reported_as_divergence(tmp_path: Path) -> None:
    train, _ = regression_data()

    def loss_fn(m: nn.Module, b: tuple[Tensor, ...], ctx: StepContext) -> tuple[Tensor, dict[str, Any]]:
        x, y = b
        out = m(x)
        if ctx.step == 3:
            out = _NaNGrad.apply(out)
        dist = torch.distributions.Normal(out, 1.0, validate_args=True)  # raises ValueError on NaN loc
        return -dist.log_prob(y).mean(), {}

    trainer = Trainer(make_model(), loss_fn, TrainConfig(epochs=2, batch_size=64, progress=False), out_dir=tmp_path)
    with pytest.raises(TrainingDiverged, match=r"weights became non-finite .*ValueError.* at epoch 2, step 2/3 \(global step 4\)"):
        trainer.fit(train)


def test_epoch_accumulator_pools_and_finds_the_first_bad_step() -> None:
    from vbayes.train.steps import EpochAccumulator

    acc = EpochAccumulator(4, torch.device("cpu"))
    for i, (loss, n) in enumerate([(1.0, 10), (2.0, 10), (4.0, 5), (math.inf, 0)]):
        acc.add(i, torch.tensor(loss), {"t": torch.tensor(2 * loss), "f": loss}, n)
    mean, logs, bad = acc.reduce()
    assert bad == (3, math.inf)
    assert mean == pytest.approx((10 + 20 + 20) / 25) and logs["f"] == pytest.approx(mean)
    # a zero-count (padding) step with an infinite value still poisons the sum: it is flagged above
    acc2 = EpochAccumulator(2, torch.device("cpu"))
    acc2.add(0, torch.tensor(3.0), {}, 2)
    acc2.add(1, torch.tensor(5.0), {}, 6)
    assert acc2.reduce() == (pytest.approx(4.5), {}, None)


@pytest.mark.parametrize("key", ["epoch", "val_loss", "val_mae", "seconds"])
def test_log_keys_that_clash_with_trainer_columns_are_refused(key: str) -> None:
    def loss_fn(m: nn.Module, b: tuple[Tensor, ...], ctx: StepContext) -> tuple[Tensor, dict[str, Any]]:
        loss, _ = mse_loss(m, b, ctx)
        return loss, {key: 1.0}

    train, _ = regression_data()
    with pytest.raises(ValueError, match=key):
        Trainer(make_model(), loss_fn, TrainConfig(epochs=1, progress=False)).fit(train)
