"""Report sections of a method comparison: tables, figures and the honest reading of the numbers.

Each ``add_*`` function appends to a :class:`vbayes.report.Report` owned by the caller, so the
same sections serve ``vbayes uq`` and the demo (:func:`vbayes.studies.uq.run_toy_comparison`).
"""

from __future__ import annotations

from typing import Any, Mapping

from vbayes.data.tabular import ClassificationData, RegressionData
from vbayes.metrics import CLASSIFICATION, REGRESSION
from vbayes.report.notes import display as metric_display
from vbayes.studies.uq.figures import bands_figure, calibration_figure, display, entropy_figure, reliability_figure
from vbayes.studies.uq.pipeline import MethodResult
from vbayes.studies.uq.published import CITATION, COUNTERPART, PUBLISHED_METHODS, published_for

MEAN_FIELD = ("bbb", "flipout", "lrt")


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "n/a"


def metric_rows(metrics: Mapping[str, Mapping[str, Any]], task: str) -> list[dict[str, Any]]:
    """One table row per method: display names of the task's metrics, timings, or the error."""
    table = REGRESSION if task == "regression" else CLASSIFICATION
    extra = ["gap_epistemic_ratio", "extrapolation_epistemic_ratio"] if task == "regression" else ["auroc_entropy", "auroc_mi"]
    rows = []
    for name, m in metrics.items():
        row: dict[str, Any] = {"method": display(name)}
        if "error" in m:
            row["error"] = m.get("error")
            rows.append(row)
            continue
        for key in table:
            row[metric_display(key)] = m.get(key)
        for key in extra:
            if key in m:
                row[metric_display(key)] = m[key]
        if isinstance(m.get("elbo"), (int, float)):
            row[metric_display("elbo")] = m["elbo"]  # variational methods: nats per training point, standardised targets
        row[metric_display("fit_seconds")] = m.get("fit_seconds")
        rows.append(row)
    return rows


def underfit_text(metrics: Mapping[str, Mapping[str, Any]], names: list[str], true_noise: float | None) -> list[str]:
    """Why variational methods in ``names`` under-fit, read from their learned noise and ELBO."""
    rows = [(k, metrics[k].get("train_noise_std"), metrics[k].get("elbo")) for k in names
            if k in MEAN_FIELD and isinstance(metrics[k].get("train_noise_std"), float)]
    if not rows or true_noise is None:
        return []
    listed = ", ".join(f"{display(k)} {s:.2f}" + (f" (ELBO {e:.3f} nats per point)" if isinstance(e, float) else "")
                       for k, s, e in rows)
    return [
        f"The under-fitting variational methods learned a noise std of {listed} at the training inputs, against "
        f"the data's {true_noise:g}. With a learned noise level on a small data set this is the ELBO's own "
        "optimum, not a failed optimisation: the KL term of many weights costs more than explaining the data as "
        "noise saves (over-pruning; Trippe & Turner 2018, Coker et al. 2022). With the noise fixed at the "
        f"truth (`vbayes uq --noise fixed --noise-std {true_noise:g}`) the same networks fit."
    ]


GAP_DEFINITION = (
    "Gap ratio = epistemic std in the middle of the gap / mean epistemic std at the training inputs; "
    "extrapolation ratio = the same half the data's span beyond its edges. "
    "A method that knows it has seen no data there should show ratios well above 1 (2 or more, say)."
)

FOONG_NOTE = (
    "Foong et al. (2019, 'In-Between' Uncertainty in Bayesian Neural Networks) prove that for "
    "one-hidden-layer networks with factorised Gaussian (mean-field) posteriors the predictive "
    "variance between two inputs is bounded by the variances at those inputs, so the band cannot "
    "widen inside a gap the way exact inference does; these numbers are reported as measured, "
    "not tuned."
)


def gap_text(metrics: Mapping[str, Mapping[str, Any]], true_noise: float | None = None) -> str:
    """A plain-language reading of the toy-gap epistemic ratios, computed from the numbers
    (``true_noise``: the data's noise std, when known)."""
    ratio = {k: m.get("gap_epistemic_ratio") for k, m in metrics.items() if "error" not in m}
    extra = {k: m.get("extrapolation_epistemic_ratio") for k, m in metrics.items() if "error" not in m}
    mean_field = {k: ratio[k] for k in MEAN_FIELD if isinstance(ratio.get(k), float)}
    listed = ", ".join(f"{display(k)} {_fmt(v)} (beyond the data {_fmt(extra.get(k))})" for k, v in ratio.items())
    parts = [GAP_DEFINITION, f"Measured: {listed}."]
    parts += _hmc_verdict(mean_field, ratio.get("hmc"))
    parts += _weak_gap(mean_field)
    parts += _underfit_caveat(metrics, true_noise)
    parts.append(FOONG_NOTE)
    return "\n\n".join(parts)


def _hmc_verdict(mean_field: Mapping[str, float], hmc: Any) -> list[str]:
    """How the mean-field gap ratios compare with HMC's (the exact-inference reference)."""
    if not mean_field:
        return []
    if not isinstance(hmc, float):
        return ["HMC did not run, so the mean-field ratios have no exact-inference reference here."]
    below = [k for k, v in mean_field.items() if v < hmc]
    if len(below) == len(mean_field):
        return [f"All mean-field methods ({', '.join(display(k) for k in mean_field)}) show less in-between "
                f"uncertainty than HMC ({_fmt(hmc)}), as Foong et al. (2019) predict."]
    if not below:
        return [f"Here the mean-field methods do not under-estimate in-between uncertainty relative to "
                f"HMC ({_fmt(hmc)}): every one has a gap ratio at least as large, contrary to what "
                "Foong et al. (2019) would lead one to expect for this network."]
    return [f"Mixed result: {', '.join(display(k) for k in below)} fall below HMC's {_fmt(hmc)}, the others do not."]


def _weak_gap(mean_field: Mapping[str, float]) -> list[str]:
    """The mean-field methods whose gap ratio is below 2."""
    weak = [display(k) for k, v in mean_field.items() if v < 2.0]
    if not weak:
        return []
    return [f"Gap ratio below 2 for {', '.join(weak)}: the in-between uncertainty is under-estimated."]


def _underfit_caveat(metrics: Mapping[str, Mapping[str, Any]], true_noise: float | None) -> list[str]:
    """A caveat for methods whose test RMSE is over twice the best, and why they under-fit."""
    rmse = {k: m.get("rmse") for k, m in metrics.items() if isinstance(m.get("rmse"), float)}
    if not rmse:
        return []
    best = min(rmse.values())
    loose = [k for k, v in rmse.items() if v > 2 * best]
    if not loose:
        return []
    named = ", ".join(f"{display(k)} ({rmse[k]:.2f})" for k in loose)
    return [
        f"Caveat: {named} have a test RMSE more than twice the best ({best:.2f}): they "
        "under-fit the data, so their epistemic band is wide at the training inputs too and their "
        "ratios compare a loose fit with itself rather than measure in-between uncertainty alone.",
        *underfit_text(metrics, loose, true_noise),
    ]


OUTPUT_TEXT = (
    "The output-only method (a network predicting mu and sigma, trained on the Gaussian NLL) has no "
    "epistemic part: it is a single network, so its predictive is one Gaussian per input and all of "
    "its variance is aleatoric. Its epistemic band is empty, its epistemic ratios are undefined "
    "(shown as n/a) and its mutual information is 0 everywhere (AUROC by MI = 0.5, chance)."
)


def add_regression_sections(report: Any, data: RegressionData, results: Mapping[str, MethodResult],
                            metrics: Mapping[str, Mapping[str, Any]], truth: Any = None,
                            prefix: str = "") -> None:
    """Bands (1-D data), metrics table, gap reading (toy-gap), output-only note and calibration."""
    fig = bands_figure(results, data, truth)
    if fig is not None:
        report.add_figure(fig, f"Predictive bands on {data.name}: mean, ±2 std of the total predictive "
                          "(light) and of its epistemic part (dark), training points in black"
                          + ("; dotted lines: the gap's middle and the extrapolation points of the ratios."
                             if "gap_middle" in data.meta else "."),
                          name=f"{prefix}bands", heading="Predictive bands")
    report.add_table(f"Test metrics on {data.name}", metric_rows(metrics, "regression"),
                     caption="Original target scale; NLL is of the predictive mixture (nats per point).")
    if any("gap_epistemic_ratio" in m for m in metrics.values()):
        rows = [{"method": display(k), "gap ratio": m.get("gap_epistemic_ratio"),
                 "extrapolation ratio": m.get("extrapolation_epistemic_ratio"),
                 "family": "mean-field" if k in MEAN_FIELD else ("exact (MCMC)" if k == "hmc" else "")}
                for k, m in metrics.items() if "error" not in m]
        report.add_table("Epistemic uncertainty in the gap and beyond the data", rows)
        report.add_text("What the gap ratios show", gap_text(metrics, data.meta.get("noise_std")))
    if "output" in metrics:
        report.add_text("Output-only has no epistemic part", OUTPUT_TEXT)
    if diagnostics_rows(metrics):
        report.add_table("MCMC diagnostics", diagnostics_rows(metrics),
                         caption="R-hat above 1.01 or a small effective sample size means the chains have not mixed. "
                         "divergences counts sampling only; warmup_divergences (from dual averaging's trial "
                         "step sizes) are expected.")
    cal = calibration_figure(results, data.y_test.double())
    if cal is not None:
        report.add_figure(cal, "Interval calibration on the test set: observed against expected coverage.",
                          name=f"{prefix}calibration", heading="Calibration curves")


def ood_text(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """Which score separates OOD inputs better for each method, and where a score is worse than chance."""
    ok = {k: m for k, m in metrics.items() if isinstance(m.get("auroc_entropy"), float)}
    if not ok:
        return "No method finished, so there are no OOD scores to read."
    parts = ["AUROC 0.5 is chance; 1.0 separates every OOD input from every test input."]
    below = [display(k) for k, m in ok.items() if m["auroc_entropy"] < 0.5]
    if below:
        parts.append(
            f"By predictive entropy, {', '.join(below)} score below chance: these out-of-distribution inputs "
            "get more confident predictions than the test inputs (ReLU networks extrapolate to confident "
            "predictions far from the data; test inputs near the class boundary carry the high entropy)."
        )
    mi_better = [display(k) for k, m in ok.items() if isinstance(m.get("auroc_mi"), float)
                 and m["auroc_mi"] > m["auroc_entropy"] and m["auroc_mi"] != 0.5]
    if mi_better:
        parts.append(f"Mutual information (the epistemic part) separates better than entropy for {', '.join(mi_better)}.")
    return " ".join(parts)


def add_classification_sections(report: Any, data: ClassificationData, results: Mapping[str, MethodResult],
                                metrics: Mapping[str, Mapping[str, Any]]) -> None:
    """Metrics table, reliability diagrams and entropy / MI histograms in and out of distribution."""
    report.add_table(f"Test metrics on {data.name}", metric_rows(metrics, "classification"),
                     caption=f"OOD sets: {', '.join(data.x_ood)}; AUROC with OOD as positives, scored by "
                     "predictive entropy and by mutual information.")
    rows = [{"method": display(k), **{f"{s} ({score})": v for s, d in m.get("auroc_by_set", {}).items()
                                      for score, v in d.items()}} for k, m in metrics.items() if "error" not in m]
    if rows:
        report.add_table("AUROC per OOD set", rows)
    if "output" in metrics:
        report.add_text("Output-only has no epistemic part", OUTPUT_TEXT)
    report.add_text("Reading the OOD scores", ood_text(metrics))
    for fig, caption, name, heading in (
        (reliability_figure(results, data.y_test), "Reliability diagrams (15 equal-width bins).", "reliability",
         "Reliability diagrams"),
        (entropy_figure(results, "entropy"), "Predictive entropy on test inputs and on each OOD set.",
         "entropy_hist", "Entropy in and out of distribution"),
        (entropy_figure(results, "mi"), "Mutual information (epistemic) on test inputs and on each OOD set.",
         "mi_hist", "Mutual information in and out of distribution"),
    ):
        if fig is not None:
            report.add_figure(fig, caption, name=name, heading=heading)


def uci_rows(name: str, metrics: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """RMSE and NLL (mean ± se) of each vbayes method, followed by the published rows."""
    rows: list[dict[str, Any]] = []
    for k, m in metrics.items():
        if m.get("splits", 0) == 0:
            rows.append({"method": f"vbayes {display(k)}", "source": "this run", "error": m.get("error")})
            continue
        rows.append({"method": f"vbayes {display(k)}", "source": f"this run ({m['splits']} splits)",
                     "RMSE": m.get("rmse"), "RMSE se": m.get("rmse_se"),
                     "NLL": m.get("nll"), "NLL se": m.get("nll_se")})
    published = published_for(name)
    if published:
        for meth in PUBLISHED_METHODS:
            (r, rse), (n, nse) = published["rmse"][meth], published["nll"][meth]
            rows.append({"method": meth, "source": "published", "RMSE": r, "RMSE se": rse, "NLL": n, "NLL se": nse})
    return rows


def uci_summary(name: str, metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """Plain-language comparison with the published table: the best test NLL on each side, and
    whether MC dropout and the ensemble land within the published +- of their own rows."""
    published = published_for(name)
    ok = {k: m for k, m in metrics.items() if m.get("splits", 0) > 0 and isinstance(m.get("nll"), float)}
    if not published or not ok:
        return "No comparison possible (no published numbers for this set, or no method finished)."
    best = min(ok, key=lambda k: ok[k]["nll"])
    pub_best = min((k for k, v in published["nll"].items() if v[0] is not None), key=lambda k: published["nll"][k][0])
    ours, theirs = ok[best]["nll"], published["nll"][pub_best][0]
    parts = [f"Best vbayes test NLL: {display(best)} {ours:.2f} ± {_fmt(ok[best].get('nll_se'))} over "
             f"{ok[best]['splits']} splits; best published: {pub_best} {theirs:.2f}. "
             + ("vbayes is better (lower)." if ours < theirs else "vbayes does not beat it.")]
    for ours_key, pub_key in COUNTERPART.items():
        if ours_key not in ok:
            continue
        for metric in ("rmse", "nll"):
            mean, se = published[metric][pub_key]
            value = ok[ours_key][metric]
            if mean is None:
                continue
            if se is None:
                verdict = "no published ± to compare with"
            elif abs(value - mean) <= se:
                verdict = "within the published ±"
            else:
                verdict = "better than the published range" if value < mean else "worse than the published range"
            parts.append(f"{display(ours_key)} {metric.upper()} {value:.2f} vs {pub_key} {mean:.2f}"
                         f"{'' if se is None else f' ± {se:.2f}'}: {verdict}.")
    if any(m["splits"] < 20 for m in ok.values()):
        parts.append("Fewer than the protocol's 20 splits ran, so these standard errors are rough.")
    return " ".join(parts)


def diagnostics_rows(metrics: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of MCMC diagnostics (R-hat, ESS, divergences) for methods that report them."""
    keys = ("rhat_max", "ess_min", "divergences", "warmup_divergences", "accept_rate", "step_size",
            "rhat_max_max", "ess_min_min", "divergences_sum")
    return [{"method": display(k), **{c: m[c] for c in keys if c in m}}
            for k, m in metrics.items() if "rhat_max" in m]


def add_uci_sections(report: Any, name: str, metrics: Mapping[str, Mapping[str, Any]],
                     first: Mapping[str, MethodResult], y_test_first: Any) -> None:
    """The RMSE / NLL table next to the published numbers, and split 0's calibration curves."""
    published = published_for(name)
    caption = (f"Mean and standard error over splits, original scale; NLL in nats. Published rows: {CITATION}."
               if published else f"No published numbers are tabulated for {name!r}.")
    rows = uci_rows(name, metrics)
    present = {column for row in rows for column in row}  # no RMSE column when every method failed
    report.add_table(f"UCI {name}: test RMSE and NLL next to the published numbers", rows, caption=caption,
                     highlight={c: "min" for c in ("RMSE", "NLL") if c in present})
    report.add_text("How this compares with the published table", uci_summary(name, metrics))
    report.add_table(f"UCI {name}: all figures", metric_rows(metrics, "regression"))
    if diagnostics_rows(metrics):
        report.add_table("MCMC diagnostics", diagnostics_rows(metrics),
                         caption="Means over splits; *_max / *_min / *_sum: the worst case over splits. "
                         "R-hat above 1.01 or a small ESS means the chains have not mixed. divergences counts sampling "
                         "only; warmup_divergences (from dual averaging's trial step sizes) are expected.")
    cal = calibration_figure(first, y_test_first, title=f"{name}, split 0")
    if cal is not None:
        report.add_figure(cal, "Interval calibration on the test set of split 0.", name="calibration",
                          heading="Calibration curves")
