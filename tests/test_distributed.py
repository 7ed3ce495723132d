"""Data-parallel training: batch sharding arithmetic and a 2-process gloo run against 1 process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from test_train_common import curves, make_model, mse_loss, regression_data
from vbayes.train.checkpoint import load_checkpoint
from vbayes.train.distributed import env_info, launch_local, shard_indices
from vbayes.errors import VBayesError
from vbayes.train import TrainConfig, Trainer


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 40), world=st.integers(1, 6), seed=st.integers(0, 10))
def test_shards_partition_the_batch_and_weights_recover_the_global_mean(size: int, world: int, seed: int) -> None:
    batch = torch.randperm(100, generator=torch.Generator().manual_seed(seed))[:size]
    values = torch.randn(100, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    shards = [shard_indices(batch, r, world) for r in range(world)]
    real = [idx for idx, w in shards if w > 0]
    assert torch.equal(torch.cat(real), batch)  # contiguous pieces, in order, nothing lost or repeated
    assert max(len(i) for i in real) - min(len(i) for i in real) <= 1
    # DDP averages the ranks' gradients: (1/W) * sum_r w_r * mean_r must be the global mean
    pooled = sum(w * values[idx].mean() for idx, w in shards) / world
    assert float(pooled) == pytest.approx(float(values[batch].mean()), rel=1e-12, abs=1e-12)


def test_env_info(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert env_info().world_size == 1 and env_info().is_main and not env_info().enabled
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    info = env_info()
    assert (info.rank, info.world_size, info.local_rank, info.enabled, info.is_main) == (2, 4, 2, True, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(VBayesError, match="RANK=4"):
        env_info()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(VBayesError, match="RANK"):
        env_info()


EPOCHS, BATCH = 3, 45  # 192 examples: 5 global steps per epoch of 45 (22 + 23 per rank), the last of 12


def _fit(out: Path | None, epochs: int = EPOCHS, resume: bool = False) -> tuple[torch.nn.Module, object]:
    train, val = regression_data()
    model = make_model(seed=3, dropout=0.0)  # deterministic forward: the curves must agree closely
    model.register_parameter("unused", torch.nn.Parameter(torch.ones(3)))  # DDP must cope with it
    cfg = TrainConfig(epochs=epochs, batch_size=BATCH, lr=3e-3, seed=11, progress=False)
    return model, Trainer(model, mse_loss, cfg, out_dir=out, run_config={"ddp": True}).fit(train, val, resume=resume)


def _ddp_worker(out: str, epochs: int = EPOCHS, resume: bool = False) -> None:
    model, result = _fit(Path(out), epochs, resume)
    rank = torch.distributed.get_rank()
    record = {"rank": rank, "history": result.history, "weights": [p.detach().flatten().tolist() for p in model.parameters()]}
    Path(out, f"rank{rank}.json").write_text(json.dumps(record))


def _start_method() -> str:
    """fork starts in ~1 s instead of re-importing torch twice; safe while this process runs one thread."""
    return "fork" if torch.get_num_threads() == 1 and hasattr(os, "fork") else "spawn"


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    ref_model, ref = _fit(None)  # first: it also imports what Adam imports lazily, before the fork
    launch_local(_ddp_worker, 2, args=(str(tmp_path),), start_method=_start_method(), timeout=180)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    # both ranks end with the same (best) weights and the same pooled metrics
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["history"] == [dict(h, seconds=h["seconds"]) for h in ranks[0]["history"]]
    for key in ("train_loss", "val_loss", "mae", "val_mae"):
        assert [h[key] for h in ranks[0]["history"]] == [h[key] for h in ranks[1]["history"]]
    # tolerance: the two runs differ only by float32 summation order in the gradient all-reduce,
    # ~1e-7 relative per step; over 15 Adam steps we allow 1e-4 relative on every epoch's losses
    for ddp_row, ref_row in zip(ranks[0]["history"], ref.history):
        for key in ("train_loss", "val_loss", "mae", "val_mae"):
            assert ddp_row[key] == pytest.approx(ref_row[key], rel=1e-4), key
    ref_weights = torch.cat([p.detach().flatten() for p in ref_model.parameters()])
    ddp_weights = torch.tensor([v for p in ranks[0]["weights"] for v in p])
    assert torch.allclose(ddp_weights, ref_weights, rtol=1e-4, atol=1e-5)
    # only rank 0 wrote the run files, and they are complete
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == EPOCHS and last["world_size"] == 2 and len(last["rng"]) == 2
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 1 + EPOCHS
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"] == {"ddp": True}
    assert not list(tmp_path.glob(".*.tmp"))


def test_prepare_out_on_a_nonzero_rank_writes_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from vbayes.cli.commands._common import prepare_out

    run = tmp_path / "run"
    run.mkdir()
    (run / ".vbayes-run").write_text("")
    (run / "last.pt").write_bytes(b"checkpoint")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert prepare_out(run, overwrite=False, resume=True) == run
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # restored after the test
    scratch = prepare_out(run, overwrite=False, resume=True)
    assert scratch != run and scratch.is_dir() and (scratch / "last.pt").read_bytes() == b"checkpoint"
    assert sys.stdout.name == os.devnull
    (run / "config.json").write_text("{}")
    with pytest.raises(VBayesError, match="already holds a run"):  # every rank fails alike
        prepare_out(run, overwrite=False)
    from vbayes.cli.runs import RESUME_RECORD, release_out

    stages = run / ".staging-x"  # a run in stages (compare-ae, uq): every rank resumes its finished stages
    (stages / "ae").mkdir(parents=True)
    (stages / RESUME_RECORD).write_text('{"command": "vbayes compare-ae"}')
    (stages / "ae" / "last.pt").write_bytes(b"ae")
    scratch = prepare_out(run, overwrite=False, resume=True)  # rank 1
    assert (scratch / ".staging-x" / "ae" / "last.pt").read_bytes() == b"ae"
    release_out(run)


@pytest.mark.slow
def test_two_process_run_resumes_exactly(tmp_path: Path) -> None:
    _fit(None, 1)  # imports what Adam imports lazily, before the fork
    straight, split = tmp_path / "straight", tmp_path / "split"
    launch_local(_ddp_worker, 2, args=(str(straight), 3), start_method=_start_method(), timeout=180)
    launch_local(_ddp_worker, 2, args=(str(split), 2), start_method=_start_method(), timeout=180)
    launch_local(_ddp_worker, 2, args=(str(split), 3, True), start_method=_start_method(), timeout=180)
    for rank in range(2):
        a = json.loads((straight / f"rank{rank}.json").read_text())
        b = json.loads((split / f"rank{rank}.json").read_text())
        assert a["weights"] == b["weights"]
        assert [(h["train_loss"], h["val_loss"]) for h in a["history"]] == [(h["train_loss"], h["val_loss"]) for h in b["history"]]
    final_a, final_b = (load_checkpoint(d / "last.pt")["model"] for d in (straight, split))
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
