"""The UQ pipeline and ``vbayes uq`` with a tiny stand-in method (real methods: one slow case)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import vbayes.studies.uq.pipeline as pipeline
from vbayes.cli import main
from vbayes.data.toy import load_moons, load_toy_gap
from vbayes.methods.predictive import ClassificationPrediction, RegressionPrediction
from vbayes.studies.uq import aggregate, run_methods
from vbayes.studies.uq.report import gap_text, uci_summary

REG_KEYS = {"rmse", "nll", "crps", "picp95", "mpiw95", "miscalibration_area", "fit_seconds", "predict_seconds"}
CLS_KEYS = {"accuracy", "nll", "brier", "ece", "auroc_entropy", "auroc_mi", "fit_seconds", "predict_seconds"}


class StandIn:
    """Bootstrap least squares on [1, x] (regression) / nearest class mean (classification).

    ``output`` keeps one member (no epistemic part); ``broken`` raises in fit; ``nan`` reports a
    diverged loss in ``info``; ``hmc`` reports chain diagnostics.
    """

    def __init__(self, name, task="regression", n_classes=None, hidden=(50,), epochs=None, seed=0, **options):
        self.name, self.task, self.n_classes, self.seed = name, task, n_classes, seed
        self.members = 1 if name == "output" else 8
        self.info: dict = {}

    def fit(self, x, y):
        if self.name == "broken":
            raise RuntimeError("stand-in failure")
        if self.name == "nan":
            self.info["error"] = "training diverged: non-finite loss at epoch 1"
            return self
        gen = torch.Generator().manual_seed(self.seed)
        n = len(x)
        self.params = []
        for s in range(self.members):
            idx = torch.arange(n) if self.members == 1 else torch.randint(0, n, (n,), generator=gen)
            if self.task == "regression":
                a = torch.cat([torch.ones(n, 1), x], 1).double()[idx]
                w = torch.linalg.lstsq(a, y.double()[idx, None]).solution
                resid = a @ w - y.double()[idx, None]
                self.params.append((w, float(resid.std()) + 1e-3))
            else:
                means = torch.stack([x[idx][y[idx] == c].mean(0) for c in range(self.n_classes)])
                self.params.append(means)
        if self.name == "hmc":
            self.info.update(rhat_max=1.01, ess_min=123.0, divergences=0)
        return self

    def predict(self, x):
        if self.task == "regression":
            a = torch.cat([torch.ones(len(x), 1), x], 1).double()
            mu = torch.stack([(a @ w)[:, 0] for w, _ in self.params])
            sigma = torch.stack([torch.full((len(x),), s, dtype=torch.float64) for _, s in self.params])
            return RegressionPrediction(mu, sigma, dict(self.info))
        probs = torch.stack([(-torch.cdist(x, m) ** 2).softmax(1) for m in self.params])
        return ClassificationPrediction(probs, dict(self.info))


@pytest.fixture()
def stand_in(monkeypatch: pytest.MonkeyPatch):
    """Route ``vbayes uq`` to :class:`StandIn` and accept its extra method names."""
    monkeypatch.setattr(pipeline, "default_factory", lambda: StandIn)
    monkeypatch.setattr(pipeline, "resolve_methods", lambda spec: spec.split(","))
    return StandIn


def test_regression_keys_ratios_and_a_failure_that_does_not_stop_the_others() -> None:
    data = load_toy_gap(seed=0)
    res = run_methods(["output", "broken", "nan", "ensemble", "hmc"], data, StandIn, progress=False)
    assert res["broken"].metrics["error"].startswith("RuntimeError: stand-in failure")
    assert "diverged" in res["nan"].metrics["error"]
    ens = res["ensemble"].metrics
    assert REG_KEYS | {"gap_epistemic_ratio", "extrapolation_epistemic_ratio"} <= set(ens)
    # a bootstrap line's epistemic std is convex in x, smallest near the inputs' centre
    assert ens["extrapolation_epistemic_ratio"] > 1.0
    p = res["ensemble"].predictions
    epi = {k: p[k].mu.std(0, unbiased=False) for k in ("train", "gap", "extrapolation")}
    assert ens["gap_epistemic_ratio"] == pytest.approx(float(epi["gap"].mean() / epi["train"].mean()), rel=1e-9)
    assert ens["extrapolation_epistemic_ratio"] == pytest.approx(
        float(epi["extrapolation"].mean() / epi["train"].mean()), rel=1e-9)
    assert res["output"].metrics["gap_epistemic_ratio"] is None
    hmc = res["hmc"].metrics
    assert (hmc["rhat_max"], hmc["ess_min"], hmc["divergences"]) == (1.01, 123.0, 0)
    text = gap_text({k: r.metrics for k, r in res.items()})
    assert "Foong" in text and "n/a" in text and "Caveat" not in text
    loose = {"hmc": {"rmse": 0.1, "gap_epistemic_ratio": 5.0}, "bbb": {"rmse": 0.5, "gap_epistemic_ratio": 0.6}}
    text = gap_text(loose)
    assert "less in-between uncertainty than HMC" in text and "Caveat: BBB (0.50)" in text


def test_predictions_are_mapped_back_to_the_original_scale() -> None:
    """Least squares is affine-equivariant: fitting on standardised data and mapping back must
    equal a fit on the raw data (numpy.linalg.lstsq)."""
    data = load_toy_gap(seed=1)
    data.y_train = data.y_train * 50 + 7
    data.y_test = data.y_test * 50 + 7
    res = run_methods(["output"], data, StandIn, progress=False)["output"]
    a = np.c_[np.ones(len(data.x_train)), data.x_train.numpy()]
    w = np.linalg.lstsq(a, data.y_train.numpy().astype(np.float64), rcond=None)[0]
    pred = np.c_[np.ones(len(data.x_test)), data.x_test.numpy()] @ w
    ref = math.sqrt(float(np.mean((pred - data.y_test.numpy()) ** 2)))
    assert res.metrics["rmse"] == pytest.approx(ref, rel=1e-4)
    assert res.predictions["test"].mean.numpy() == pytest.approx(pred, rel=1e-4, abs=1e-3)


def test_classification_keys_and_auroc_per_set() -> None:
    data = load_moons(seed=0, n_train=100, n_test=100)
    res = run_methods(["output", "ensemble"], data, StandIn, progress=False)
    for r in res.values():
        assert CLS_KEYS <= set(r.metrics)
        assert 0.0 <= r.metrics["auroc_entropy"] <= 1.0 and set(r.metrics["auroc_by_set"]) == {"far"}
    assert res["output"].metrics["auroc_mi"] == 0.5  # MI is 0 everywhere for one member
    assert res["ensemble"].metrics["accuracy"] > 0.7


def test_aggregate_mean_and_standard_error() -> None:
    agg = aggregate([{"rmse": 1.0, "nll": 2.0}, {"rmse": 3.0, "nll": 2.0}, {"error": "x"}])
    assert agg["rmse"] == 2.0 and agg["rmse_se"] == pytest.approx(math.sqrt(2.0 / 2))
    assert agg["nll_se"] == 0.0 and agg["splits"] == 2 and agg["errors"] == ["x"]
    assert aggregate([{"error": "boom"}]) == {"error": "boom", "splits": 0}
    worst = aggregate([{"rhat_max": 1.2, "ess_min": 50.0, "divergences": 1},
                       {"rhat_max": 1.0, "ess_min": 90.0, "divergences": 2}])
    assert (worst["rhat_max_max"], worst["ess_min_min"], worst["divergences_sum"]) == (1.2, 50.0, 3)
    assert worst["rhat_max"] == pytest.approx(1.1)


def test_uci_summary_against_the_published_boston_rows() -> None:
    metrics = {
        "dropout": {"rmse": 3.5, "nll": 2.1, "nll_se": 0.05, "splits": 20},   # 2.97 +- 0.85 ; 2.46 +- 0.25
        "ensemble": {"rmse": 5.0, "nll": 2.40, "nll_se": 0.1, "splits": 20},  # 3.28 +- 1.00 ; 2.41 +- 0.25
    }
    text = uci_summary("boston", metrics)
    assert "Best vbayes test NLL: MC dropout 2.10" in text and "best published: Deep ensemble 2.41" in text
    assert "vbayes is better" in text
    assert "MC dropout RMSE 3.50 vs MC dropout 2.97 ± 0.85: within the published ±" in text
    assert "MC dropout NLL 2.10 vs MC dropout 2.46 ± 0.25: better than the published range" in text
    assert "ensemble RMSE 5.00 vs Deep ensemble 3.28 ± 1.00: worse than the published range" in text
    assert "rough" not in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "nope"], "unknown --data"),
        (["--data", "toy-gap", "--methods", "bbb,magic"], "unknown method 'magic'"),
        (["--data", "uci"], "--data-dir"),
        (["--data", "toy-gap", "--splits", "2"], "--splits applies"),
        (["--data", "toy-gap", "--methods", "pbp", "--option", "bbb.lr=0.1"], "'bbb' is not among --methods"),
        (["--data", "toy-gap", "--methods", "pbp", "--option", "pbp.nosuch=1"], "unknown option(s) nosuch"),
        (["--data", "toy-gap", "--methods", "pbp", "--option", "pbp.epochs=0"], "pbp.epochs must be an integer"),
        (["--data", "toy-gap", "--methods", "pbp", "--option", "pbp.n_samples=abc"], "n_samples must be an integer"),
        (["--data", "moons", "--methods", "vd", "--option", "vd.variant=magic"], "variant must be one of"),
        (["--data", "toy-gap", "--methods", "bbalpha", "--option", "bbalpha.alpha=2"], "alpha must be in (0, 1]"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, argv, message) -> None:
    assert main(["uq", *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_option_without_a_method_key_value_shape_is_a_usage_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["uq", "--data", "toy-gap", "--methods", "pbp", "--option", "pbp.epochs", "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2 and "expected METHOD.KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_method_options_reach_their_method_only(tmp_path: Path) -> None:
    # pbp's steps count single-example ADF updates: 2 epochs over toy-gap's 40 points are 80; n_samples=1 is
    # PBP's exact single Gaussian (no epistemic rows); the other method keeps its defaults
    out = tmp_path / "run"
    assert main(["uq", "--data", "toy-gap", "--methods", "pbp,output", "--option", "pbp.epochs=2", "pbp.n_samples=1",
                 "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pbp"]["steps"] == 80 and metrics["pbp"]["gap_epistemic_ratio"] is None
    assert metrics["output"]["steps"] != 80


def test_wrong_uci_layout_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "data.txt").write_text("1 2\n")
    assert main(["uq", "--data", "uci", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "not in the UCI layout" in capsys.readouterr().err


def test_cli_toy_gap_writes_metrics_figures_report(tmp_path: Path, stand_in) -> None:
    out = tmp_path / "run"
    argv = ["uq", "--data", "toy-gap", "--methods", "output,broken,ensemble", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"output", "broken", "ensemble"} and "error" in metrics["broken"]
    assert REG_KEYS | {"gap_epistemic_ratio"} <= set(metrics["ensemble"])
    html = (out / "report.html").read_text()
    assert "Output-only has no epistemic part" in html and "Foong" in html
    assert (out / "figures" / "bands.png").stat().st_size > 1000
    assert (out / "figures" / "calibration.png").exists()
    assert main(argv) == 2  # refuses to replace the run without --overwrite


def test_cli_moons_and_uci(tmp_path: Path, stand_in) -> None:
    from tests.test_uci import write_layout

    assert main(["uq", "--data", "moons", "--methods", "output,ensemble", "--out", str(tmp_path / "m"),
                 "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert CLS_KEYS <= set(metrics["ensemble"])
    for name in ("reliability", "entropy_hist", "mi_hist"):
        assert (tmp_path / "m" / "figures" / f"{name}.png").exists()
    layout = tmp_path / "boston"
    layout.mkdir()
    write_layout(layout, n=40, n_splits=3)
    assert main(["uq", "--data", "uci", "--data-dir", str(layout), "--splits", "2", "--methods", "ensemble,broken",
                 "--out", str(tmp_path / "u"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "u" / "metrics.json").read_text())
    ens = metrics["ensemble"]
    assert ens["splits"] == 2 and {"rmse", "rmse_se", "nll", "nll_se", "crps_se"} <= set(ens)
    assert metrics["broken"]["splits"] == 0 and "error" in metrics["broken"]
    html = (tmp_path / "u" / "report.html").read_text()
    assert "published" in html and "3.01" in html  # boston's PBP RMSE next to ours
    assert main(["uq", "--data", "uci", "--data-dir", str(layout), "--splits", "5", "--methods", "ensemble",
                 "--out", str(tmp_path / "u2")]) == 2


def test_real_methods_through_the_pipeline() -> None:
    """The real ``vbayes.methods`` behind the same pipeline (tiny budgets: wiring, not quality)."""
    pytest.importorskip("vbayes.methods.hmc")
    data = load_toy_gap(seed=0, n_train=20, n_test=30)
    data.x_grid = data.x_grid[::20]
    opts = {"hmc": {"num_chains": 2, "num_warmup": 20, "num_samples": 20, "init_steps": 20, "n_leapfrog": 4},
            "ensemble": {"n_members": 2}}
    res = run_methods(["output", "ensemble", "hmc"], data, progress=False, epochs=2, method_options=opts)
    for name, r in res.items():
        assert r.ok, (name, r.metrics)
        assert all(math.isfinite(r.metrics[k]) for k in REG_KEYS), name
    assert {"rhat_max", "ess_min", "divergences"} <= set(res["hmc"].metrics)
    assert res["output"].metrics["gap_epistemic_ratio"] is None
    assert res["ensemble"].metrics["gap_epistemic_ratio"] > 0


def test_run_toy_comparison_adds_to_a_given_report(tmp_path: Path) -> None:
    from vbayes.report import Report
    from vbayes.studies.uq import run_toy_comparison

    report = Report("demo")
    metrics = run_toy_comparison(["output", "ensemble"], data="cubic", report=report, factory=StandIn)
    assert set(metrics) == {"output", "ensemble"} and "gap_epistemic_ratio" not in metrics["ensemble"]
    path = report.write(tmp_path)
    assert (tmp_path / "figures" / "uq_bands.png").exists() and "Inference methods on cubic" in path.read_text()


def test_ood_text_reads_the_numbers() -> None:
    from vbayes.studies.uq.report import ood_text

    text = ood_text({"output": {"auroc_entropy": 0.3, "auroc_mi": 0.5},
                     "ensemble": {"auroc_entropy": 0.6, "auroc_mi": 0.9}, "hmc": {"error": "x"}})
    assert "output only score below chance" in text and "better than entropy for ensemble." in text
