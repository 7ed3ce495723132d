"""The one table of metric notes: every report's metrics have a note, and the notes render as before."""

from __future__ import annotations

from vbayes.metrics import CLASSIFICATION, REGRESSION
from vbayes.report.notes import NOTES, MetricNote, describe, display, highlights, legend, note_rows
from vbayes.studies.autoencoders import bae_report, compare_report, vae_report


def test_every_reported_metric_has_a_note() -> None:
    keys = [*REGRESSION, *CLASSIFICATION, *bae_report.METRIC_KEYS, *vae_report.METRIC_KEYS,
            *compare_report.METRIC_KEYS, "gap_epistemic_ratio", "extrapolation_epistemic_ratio", "auroc_entropy",
            "auroc_mi", "elbo", "fit_seconds"]
    missing = [k for k in keys if k not in NOTES]
    assert not missing
    assert all(NOTES[k].meaning and NOTES[k].display for k in keys)
    assert all(NOTES[k].better in (None, "higher", "lower") for k in keys)


def test_predictive_metrics_keep_the_names_and_directions_of_vbayes_metrics() -> None:
    for table in (REGRESSION, CLASSIFICATION):
        for key, spec in table.items():
            assert NOTES[key].display == spec.display
            expected = None if spec.lower_is_better is None else ("lower" if spec.lower_is_better else "higher")
            assert NOTES[key].better == expected


def test_describe_joins_unit_and_direction() -> None:
    assert MetricNote("x", "ELBO on the test set", "nats per example", "higher").describe() == \
        "ELBO on the test set (nats per example; higher is better)"
    assert MetricNote("x", "epochs run").describe() == "epochs run"
    assert MetricNote("x", "training time per epoch", "s").describe() == "training time per epoch (s)"
    assert MetricNote("x", "AUROC", better="higher").describe() == "AUROC (higher is better)"
    assert describe("no_such_metric") == "" and display("no_such_metric") == "no such metric"


def test_note_rows_keep_the_report_order_and_append_the_others() -> None:
    metrics = {"val_kl": 1.0, "epochs": 3, "test_elbo": -90.0}
    rows = note_rows(metrics, ("test_elbo", "test_nll", "epochs"))
    assert [r["metric"] for r in rows] == ["test_elbo", "epochs"]
    assert rows[0]["meaning"] == describe("test_elbo") and rows[1]["value"] == 3
    rows = note_rows(metrics, ("test_elbo", "epochs"), others=True)
    assert [r["metric"] for r in rows] == ["test_elbo", "epochs", "val_kl"] and rows[-1]["meaning"] == ""


def test_comparison_caption_and_highlights_come_from_the_notes() -> None:
    assert highlights(compare_report.METRIC_KEYS) == {"kNN acc.": "max", "silhouette": "max", "recon NLL": "min"}
    text = legend(["knn_accuracy", "seconds_per_epoch"])
    assert text.startswith("kNN acc.: share of test codes") and text.endswith("s / epoch: training time per epoch (s)")
