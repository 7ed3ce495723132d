"""``benchmarks/svd_lenet.py --quick``: the fields it writes, and the pruned error and compression
against an explicitly masked dense LeNet-300-100 rebuilt from the saved sparse net."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import vbayes

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "svd_lenet.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("svd_lenet", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_the_figures_and_prunes_as_a_masked_dense_net(tmp_path: Path, capsys) -> None:
    script = _load_script()
    threads = torch.get_num_threads()
    try:
        assert script.main(["--quick", "--out", str(tmp_path / "out")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing outside --out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["results.json", "svd_lenet.pt"]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["epochs"] == 2 and res["data"].startswith("mnist5k: 500 training digits, 1000 test digits")
    assert {"error_pct", "error_unpruned_pct", "weights", "kept", "compression", "kept_per_layer",
            "seconds_per_epoch"} <= set(res["svd"])
    assert {"error_pct", "weights", "seconds_per_epoch"} <= set(res["dense"]) and res["time_ratio"] > 0
    assert res["paper"]["error_pct"] == 1.92 and res["paper"]["compression"] == 68.0
    assert "| paper (Molchanov et al. 2017" in capsys.readouterr().out

    # the oracle: a plain nn.Linear LeNet whose weights are theta with log alpha > 3 set to zero
    state = torch.load(tmp_path / "out" / "svd_lenet.pt")
    dense = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    kept = total = 0
    with torch.no_grad():
        for i in (0, 2, 4):
            theta, log_s2 = state[f"{i}.theta"], state[f"{i}.log_sigma2"]
            keep = (log_s2 - torch.log(theta**2 + 1e-8)) <= 3.0
            dense[i].weight.copy_(theta * keep)
            dense[i].bias.copy_(state[f"{i}.bias"])
            kept, total = kept + int(keep.sum()), total + keep.numel()
    data = vbayes.data.load("mnist5k")
    with torch.no_grad():
        err = 100.0 * float((dense(data.x_test.flatten(1)).argmax(1) != data.y_test).float().mean())
    assert res["svd"]["error_pct"] == pytest.approx(err, abs=1e-9)
    assert (res["svd"]["kept"], res["svd"]["weights"]) == (kept, total) == (res["svd"]["kept"], 266_200)
    assert res["svd"]["compression"] == pytest.approx(total / kept)
    assert kept < total  # something was pruned, so the mask mattered
