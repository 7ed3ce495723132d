"""Report sections of the quality-of-uncertainty study: every method against HMC, and the
lecture's four claims in plain words, whatever the numbers turn out to be."""

from __future__ import annotations

from typing import Any, Mapping

from vbayes.studies.uq.figures import display

CLAIMS = (
    ("calibration", "Calibration metrics are unreliable",
     "Does ranking the methods by test NLL (or calibration) rank them by how close their predictive is to HMC's?"),
    ("structure", "Structure is not necessarily helpful",
     "Is MVG (a structured, matrix-variate posterior) closer to HMC than mean-field BBB?"),
    ("ensembles", "Ensembles are unpredictable",
     "How much does the ensemble's uncertainty {where} move from one seed to the next, next to HMC's?"),
    ("gaussian", "Don't trust the Gaussian",
     "Is HMC's own predictive of f(x) {where} close to a Gaussian with the same mean and variance?"),
)

INTRO = (
    "After Yao, Pan, Ghosh & Doshi-Velez (2019), 'Quality of Uncertainty Quantification for Bayesian Neural "
    "Network Inference'. HMC's posterior predictive is the reference; each method's distance to it is "
    "w2_to_reference: the 1-D Wasserstein-2 distance between the method's and HMC's samples of f(x) (noise "
    "left out), averaged over {inputs}, in units of the training targets' std. The reference is used only "
    "when HMC's chains agree on those predictions (R-hat at most 1.01)."
)


def study_rows(metrics: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per method with a distance to HMC, closest first."""
    names = sorted((k for k, m in metrics.items() if isinstance(m.get("w2_to_reference"), float)),
                   key=lambda k: metrics[k]["w2_to_reference"])
    keys = (("w2_to_reference", "W2 to HMC"), ("gap_epistemic_ratio", "gap ratio"),
            ("extrapolation_epistemic_ratio", "beyond-data ratio"), ("nll", "test NLL"), ("picp95", "PICP 95%"),
            ("miscalibration_area", "miscal. area"))
    present = [(key, label) for key, label in keys if any(isinstance(metrics[k].get(key), float) for k in names)]
    return [{"method": display(k), **{label: metrics[k].get(key) for key, label in present}} for k in names]


def findings_text(found: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(heading, paragraph)`` per claim; one line saying why when the study cannot judge."""
    ref = found.get("reference", {})
    if "verdict" in found:
        return [("The study cannot judge", f"{found['verdict']}.")]
    out = [("The HMC reference", f"{ref.get('reason')}.")]
    where = found.get("region", "in the gap")
    for key, claim, question in CLAIMS:
        finding = found.get(key, {})
        verdict = finding.get("verdict", "not computed")
        out.append((f"'{claim}'", f"{question.format(where=where)} Measured: {verdict}."))
    return out


def add_study_sections(report: Any, found: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]]) -> None:
    """The study's table and findings, appended to ``report`` (a :class:`vbayes.report.Report`)."""
    inputs = "the plotting grid" if found.get("reference", {}).get("inputs") == "grid" else "the test inputs"
    report.add_section("Quality of uncertainty against HMC (Yao et al. 2019)")
    report.add_text("How the methods are held against HMC", INTRO.format(inputs=inputs))
    rows = study_rows(metrics)
    if rows:
        report.add_table("Distance to the HMC predictive", rows,
                         caption="Closest first. W2 in standardised units (training targets' std); the ratios (1-D "
                         "toys) are the epistemic std in the gap / beyond the data over that at the training inputs.",
                         highlight={"W2 to HMC": "min"})
    for heading, text in findings_text(found):
        report.add_text(heading, text)
