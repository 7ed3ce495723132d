"""The quality-of-uncertainty study (vbayes.studies.uq.findings / study) on predictions whose
distances to the reference are known in closed form."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vbayes.methods.predictive import RegressionPrediction
from vbayes.studies.uq.experiment import run_uq
from vbayes.studies.uq.findings import (MAX_RHAT, add_reference_distances, calibration_finding, ensembles_finding,
                                        findings, gaussian_finding, in_gap, null_ks, reference_check,
                                        structure_finding)
from vbayes.studies.uq.pipeline import MethodResult

S, M = 4000, 30


def _result(mu: torch.Tensor, chains: int | None = None, **metrics: float) -> MethodResult:
    info = {"predict_chains": chains} if chains else {}
    pred = RegressionPrediction(mu.double(), torch.full_like(mu, 0.1).double(), info)
    return MethodResult(dict(metrics), {"grid": pred, "test": pred})


def _gauss(mean: float, sd: float, seed: int, s: int = S, m: int = M) -> torch.Tensor:
    return mean + sd * torch.randn(s, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_reference_check_accepts_agreeing_chains_and_refuses_disagreeing_ones() -> None:
    good = reference_check(_result(_gauss(0.0, 1.0, 0), chains=4), "grid")
    assert good["ok"] and good["rhat_predictions"] <= MAX_RHAT
    mu = _gauss(0.0, 1.0, 1)
    mu[: S // 4] += 1.0  # the first chain sits a standard deviation away
    bad = reference_check(_result(mu, chains=4), "grid")
    assert not bad["ok"] and bad["rhat_predictions"] > 1.1 and "no reference" in bad["reason"]
    assert not reference_check(_result(mu, chains=None), "grid")["ok"]  # chains unknown: no R-hat
    assert not reference_check(None, "grid")["ok"]


def test_w2_to_reference_matches_the_gaussian_closed_form_in_standardised_units() -> None:
    # W2(N(m, s1^2), N(m, s2^2)) = |s1 - s2|; divided by the targets' std (2.0 here)
    results = {"hmc": _result(_gauss(1.0, 0.5, 2), chains=4), "bbb": _result(_gauss(1.0, 0.2, 3)),
               "shifted": _result(_gauss(1.6, 0.5, 4)), "output": _result(torch.full((1, M), 1.0))}
    ref = add_reference_distances(results, "grid", scale=2.0)
    assert ref["ok"]
    tol = 6 * 0.5 / math.sqrt(S)
    assert abs(results["bbb"].metrics["w2_to_reference"] - 0.3 / 2.0) < tol
    assert abs(results["shifted"].metrics["w2_to_reference"] - 0.6 / 2.0) < tol
    assert abs(results["output"].metrics["w2_to_reference"] - 0.5 / 2.0) < tol  # a point mass at the mean: the sd
    assert "w2_to_reference" not in results["hmc"].metrics and results["hmc"].metrics["rhat_predictions"] <= MAX_RHAT


def test_calibration_finding_reads_the_rank_agreement() -> None:
    agree = {k: {"nll": v, "w2_to_reference": v / 10, "miscalibration_area": v} for k, v in
             (("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0))}
    found = calibration_finding(agree)
    assert found["spearman_nll_w2"] == pytest.approx(1.0) and found["verdict"].startswith("a fair guide")
    top_swapped = {**agree, "a": {**agree["a"], "w2_to_reference": 0.25}}  # best NLL, second closest
    assert calibration_finding(top_swapped)["verdict"].startswith("right on the whole")
    reverse = {k: {"nll": v, "w2_to_reference": 1 / v} for k, v in (("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0))}
    found = calibration_finding(reverse)
    assert found["spearman_nll_w2"] == pytest.approx(-1.0)
    assert found["verdict"].startswith("unreliable") and found["best_nll"] == "a" and found["closest_to_reference"] == "d"
    assert calibration_finding({"a": agree["a"]})["verdict"].startswith("cannot judge")


def test_structure_finding_compares_mvg_with_bbb() -> None:
    assert structure_finding({"mvg": {"w2_to_reference": 0.1}, "bbb": {"w2_to_reference": 0.2}})["ratio"] == 0.5
    assert "did not help" in structure_finding({"mvg": {"w2_to_reference": 0.3},
                                                "bbb": {"w2_to_reference": 0.2}})["verdict"]
    assert structure_finding({"bbb": {"w2_to_reference": 0.2}})["verdict"].startswith("cannot judge")


def test_ensembles_finding_measures_the_spread_across_seeds_against_hmc_chains() -> None:
    mask = torch.ones(M, dtype=torch.bool)
    sds = [0.1, 0.2, 0.3, 0.4, 0.5]
    seeds = [_result(_gauss(0.0, sd, 10 + i)) for i, sd in enumerate(sds)]
    hmc = _result(_gauss(0.0, 1.0, 20), chains=4)
    found = ensembles_finding(seeds, hmc, "grid", mask)
    t = torch.tensor(sds, dtype=torch.float64)
    assert found["cv"] == pytest.approx(float(t.std() / t.mean()), rel=0.03)
    assert found["reference_in_gap_std"] == pytest.approx(1.0, rel=0.03)
    assert found["reference_chain_cv"] < 0.05 and not found["reference_inside_range"]
    assert found["verdict"].startswith("unpredictable")


def test_gaussian_finding_tells_a_bimodal_reference_from_a_gaussian_one() -> None:
    mask = in_gap(torch.linspace(-2, 2, M)[:, None], {"gap": [-1.0, 1.0]})
    assert int(mask.sum()) == 14
    gauss = gaussian_finding(_result(_gauss(0.0, 1.0, 30), chains=4), "grid", mask)
    assert gauss["verdict"].startswith("close to Gaussian") and abs(gauss["coverage95_mean"] - 0.95) < 0.02
    sign = torch.where(torch.rand(S, M, generator=torch.Generator().manual_seed(31)) < 0.5, -1.0, 1.0)
    bimodal = gaussian_finding(_result(sign.double() * 2 + _gauss(0.0, 0.2, 32), chains=4), "grid", mask)
    # two narrow modes at +-2: a Gaussian with their variance puts its 95% interval around both (coverage 1)
    assert bimodal["verdict"].startswith("not Gaussian") and bimodal["ks_mean"] > 0.1
    assert bimodal["coverage95_mean"] == 1.0


def test_null_ks_matches_lilliefors_critical_value() -> None:
    # Lilliefors (1967): the 5% critical value of the KS distance to a moment-matched Gaussian is
    # about 0.886 / sqrt(n) for large n; 400 replicates give its 95th percentile to about 5-10%
    mean, q95 = null_ks(500)
    assert abs(q95 * math.sqrt(500) - 0.886) < 0.09 and mean < q95


def test_findings_cannot_judge_without_a_mixed_reference() -> None:
    ref = {"ok": False, "reason": "R-hat on HMC's predictions 1.2000 > 1.01"}
    found = findings({}, ref, None, [], "grid", torch.zeros(3, 1), {})
    assert found["verdict"] == "cannot judge: R-hat on HMC's predictions 1.2000 > 1.01"


def _quantiles(n: int = 100) -> torch.Tensor:
    return torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n)


class Sampler:
    """Stand-in method: f(x) samples ``0.1 x^3 + sd * z`` with a method-specific sd (x in the
    units the pipeline gives it, standardised), 4 "chains" for hmc, one row for output."""

    SD = {"hmc": 0.5, "bbb": 0.1, "mvg": 0.45, "output": 0.0}

    def __init__(self, name, task="regression", n_classes=None, hidden=(50,), epochs=None, seed=0, **options):
        self.name, self.seed, self.info = name, seed, {}

    def fit(self, x, y):
        return self

    def predict(self, x):
        sd = self.SD.get(self.name, 0.05 * (1 + self.seed))  # ensemble: the spread grows with the seed
        rows = 1 if self.name == "output" else 400
        # 4 blocks ("chains"), each the standard normal's 100 quantiles at (k + 1/2) / 100, the even ones (shuffled)
        # then the odd ones, so that the chains and their halves agree (split R-hat ~ 1); W2 between two methods'
        # sets is |sd1 - sd2| rms(q)
        gen = torch.Generator().manual_seed(100 + self.seed)
        q = _quantiles()
        half = len(q) // 2

        def chain() -> torch.Tensor:
            return torch.cat([q[0::2][torch.randperm(half, generator=gen)], q[1::2][torch.randperm(half, generator=gen)]])

        z = torch.stack([torch.cat([chain() for _ in range(rows // len(q))]) for _ in range(len(x))], 1) \
            if rows > 1 else torch.zeros(1, len(x), dtype=torch.float64)
        mu = 0.1 * x[:, 0].double() ** 3 + sd * z
        info = {"predict_chains": 4} if self.name == "hmc" else {}
        return RegressionPrediction(mu, torch.full_like(mu, 0.3), info)


def test_run_uq_writes_w2_findings_and_the_report(tmp_path) -> None:
    metrics = run_uq("cubic-gap", ["output", "bbb", "mvg", "ensemble", "hmc"], tmp_path, factory=Sampler,
                     progress=False)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == json.loads(json.dumps(metrics))
    from vbayes.data import load

    std_y = float(load("cubic-gap").y_train.double().std(unbiased=False))
    # the pipeline maps sd (standardised) to sd * std_y; W2 divides by std_y again: |sd - 0.5| rms(q)
    rms = float(_quantiles().square().mean().sqrt())
    for name, sd in (("bbb", 0.1), ("mvg", 0.45), ("output", 0.0)):
        assert written[name]["w2_to_reference"] == pytest.approx(abs(sd - 0.5) * rms, rel=1e-6)
    found = written["findings"]
    assert found["reference"]["ok"] and found["region"] == "in the gap"
    assert found["structure"]["verdict"].startswith("structure helped")
    assert found["ensembles"]["seeds"] == 5
    assert found["ensembles"]["in_gap_std"] == pytest.approx([0.05 * (1 + k) * std_y for k in range(5)], rel=0.1)
    assert found["gaussian"]["verdict"].startswith("close to Gaussian")
    html = (tmp_path / "report.html").read_text()
    assert "Quality of uncertainty against HMC" in html and "Ensembles are unpredictable" in html


def test_uci_reference_uses_the_splits_where_hmc_mixed() -> None:
    from vbayes.studies.uq.study import uci_reference

    refs = [{"ok": False, "rhat_predictions": 1.3, "reason": "x"}, {"ok": True, "rhat_predictions": 1.004},
            {"ok": True, "rhat_predictions": 1.008}]
    ref = uci_reference(refs)
    assert ref["ok"] and ref["splits_judged"] == [1, 2] and ref["rhat_predictions"] == 1.3
    assert "1.0080 on 2 of 3 splits" in ref["reason"] and "split(s) 0: R-hat 1.300" in ref["reason"]
    # a split where HMC failed has no R-hat: the others' figures must not shift onto it
    failed_first = uci_reference([{"ok": False, "rhat_predictions": None, "reason": "HMC failed"},
                                  {"ok": True, "rhat_predictions": 1.002}, {"ok": True, "rhat_predictions": 1.009}])
    assert "at most 1.0090 on 2 of 3 splits" in failed_first["reason"]
    none = uci_reference([{"ok": False, "rhat_predictions": 1.2}, {"ok": False, "rhat_predictions": 1.5}])
    assert not none["ok"] and "any of the 2 splits" in none["reason"] and "1.200" in none["reason"]


def test_aggregate_averages_a_figure_over_the_splits_that_have_it() -> None:
    from vbayes.studies.uq.uci import aggregate

    agg = aggregate([{"rmse": 1.0, "w2_to_reference": 0.2}, {"rmse": 3.0}, {"rmse": 2.0, "w2_to_reference": 0.4}])
    assert agg["rmse"] == 2.0 and "rmse_splits" not in agg
    assert agg["w2_to_reference"] == pytest.approx(0.3) and agg["w2_to_reference_splits"] == 2
    assert agg["w2_to_reference_se"] == pytest.approx(0.1)


def test_run_uq_on_uci_judges_only_the_mixed_splits(tmp_path) -> None:
    # split 0's "chains" disagree (one shifted), split 1's agree: the distances and findings use split 1 only
    class Shifted(Sampler):
        def predict(self, x):
            pred = super().predict(x)
            if self.name == "hmc" and self.seed == 0:
                pred.mu[:100] += 1.0
            return pred

    from tests.test_uci import write_layout

    uci = tmp_path / "tiny"
    uci.mkdir()
    write_layout(uci, n=60, n_splits=2)
    metrics = run_uq("uci", ["output", "bbb", "mvg", "ensemble", "hmc"], tmp_path / "out", data_dir=uci, factory=Shifted,
                     progress=False)
    found = metrics["findings"]
    assert found["reference"]["ok"] and found["reference"]["splits_judged"] == [1]
    assert metrics["bbb"]["w2_to_reference_splits"] == 1
    rms = float(_quantiles().square().mean().sqrt())
    assert metrics["bbb"]["w2_to_reference"] == pytest.approx(0.4 * rms, rel=1e-6)
    assert found["region"] == "on the test inputs" and found["ensembles"]["seeds"] == 5
    from vbayes.studies.uq.study_report import findings_text, study_rows

    assert "gap ratio" not in study_rows(metrics)[0] and "W2 to HMC" in study_rows(metrics)[0]
    assert "uncertainty on the test inputs move" in dict(findings_text(found))["'Ensembles are unpredictable'"]
