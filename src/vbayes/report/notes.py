"""One table of what each metric in a report means: :data:`NOTES`, keyed as in ``metrics.json``.

Every report takes its metric display names, one-line meanings, units and which way is better
from here (the uncertainty comparison, the AE / VAE / Bayesian-AE comparison, the ``vbayes vae``,
``ae`` and ``bae`` pages). The predictive metrics of :mod:`vbayes.metrics` keep their display
names and directions there, next to their functions; their notes only add meaning and unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping

from vbayes.metrics import CLASSIFICATION, REGRESSION

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class MetricNote:
    """A metric for readers: short ``display`` name (table column), one-line ``meaning``, ``unit``
    ("" when unitless) and ``better`` ("higher", "lower", or None when neither is)."""

    display: str
    meaning: str
    unit: str = ""
    better: Better | None = None

    def describe(self) -> str:
        """The meaning with its unit and direction, e.g. ``"ELBO on the test set (nats per example;
        higher is better)"``."""
        extra = [part for part in (self.unit, f"{self.better} is better" if self.better else "") if part]
        return f"{self.meaning} ({'; '.join(extra)})" if extra else self.meaning

    @property
    def highlight(self) -> str | None:
        """The table highlight of the best value: ``"max"``, ``"min"`` or None."""
        return {"higher": "max", "lower": "min"}.get(self.better or "")


def _predictive(key: str, meaning: str, unit: str = "") -> MetricNote:
    """The note of a metric of :mod:`vbayes.metrics`: its display name and direction are taken from there."""
    spec = REGRESSION[key] if key in REGRESSION else CLASSIFICATION[key]
    better = None if spec.lower_is_better is None else ("lower" if spec.lower_is_better else "higher")
    return MetricNote(spec.display, meaning, unit, better)


NOTES: dict[str, MetricNote] = {
    # predictive metrics of vbayes.metrics (the uncertainty comparison)
    "rmse": _predictive("rmse", "root mean squared error of the predictive mean on the test set", "target units"),
    "nll": _predictive("nll", "negative log-likelihood of the test targets under the predictive", "nats per point"),
    "crps": _predictive("crps", "continuous ranked probability score of the predictive mixture", "target units"),
    "picp95": _predictive("picp95", "share of test targets inside the central 95% predictive interval (best near 0.95)"),
    "mpiw95": _predictive("mpiw95", "mean width of the central 95% predictive interval", "target units"),
    "miscalibration_area": _predictive("miscalibration_area", "area between the observed and the expected interval "
                                       "coverage"),
    "accuracy": _predictive("accuracy", "share of test inputs whose most probable class is right"),
    "brier": _predictive("brier", "mean squared error of the predicted class probabilities"),
    "ece": _predictive("ece", "expected calibration error over 15 equal-width confidence bins"),
    # other columns of the uncertainty comparison (vbayes uq, the demo's second part)
    "gap_epistemic_ratio": MetricNote(
        "gap epistemic ratio", "epistemic std in the middle of the gap / mean epistemic std at the training inputs",
        better="higher"),
    "extrapolation_epistemic_ratio": MetricNote(
        "extrapolation epistemic ratio", "epistemic std half the data's span beyond its edges / mean epistemic std "
        "at the training inputs", better="higher"),
    "auroc_entropy": MetricNote("auroc entropy", "AUROC of OOD against test inputs scored by predictive entropy "
                                "(0.5: chance)", better="higher"),
    "auroc_mi": MetricNote("auroc mi", "AUROC of OOD against test inputs scored by mutual information "
                           "(0.5: chance)", better="higher"),
    "elbo": MetricNote("ELBO / point", "ELBO of a variational method on its standardised training targets",
                       "nats per training point", "higher"),
    "fit_seconds": MetricNote("fit s", "wall-clock time of the fit", "s"),
    "w2_to_reference": MetricNote(
        "W2 to HMC", "mean over the inputs of the 1-D Wasserstein-2 distance between the method's and HMC's samples "
        "of f(x) (the quality-of-uncertainty study)", "training targets' std", "lower"),
    "rhat_predictions": MetricNote("R-hat (predictions)", "rank-normalised split R-hat of HMC's f(x) over the "
                                   "study's inputs; at most 1.01 for HMC to serve as the reference", better="lower"),
    "energy": MetricNote("BB-α energy / point", "the black-box alpha energy of bbalpha's fitted q (its objective)",
                         "nats per training point", "lower"),
    "objective": MetricNote("VD objective / point", "vd's training objective NLL + KL/N to the improper log-uniform "
                            "prior: not a bound on anything (Hron et al. 2018)", "nats per training point", "lower"),
    "sparsity": MetricNote("sparsity", "fraction of vd's weights pruned (log alpha > 3)"),
    "compression": MetricNote("compression", "vd's weights over the weights kept after pruning"),
    "nn_elbo": MetricNote("NN-ELBO / point", "bbh's ELBO with the nearest-neighbour KL estimate (an estimate, not a "
                          "bound)", "nats per training point", "higher"),
    "kl_nn": MetricNote("KL (NN est.)", "bbh's nearest-neighbour estimate of KL(q || prior)", "nats"),
    "weight_spread": MetricNote("weight spread", "std of bbh's generated weights across draws over the prior std "
                                "(near 0: q collapsed to a point)"),
    "reverted_updates": MetricNote("reverted updates", "pbp's ADF updates undone by the guard (v <= 1e-100 or NaN)"),
    # auto-encoders (vbayes vae / ae / bae / compare-ae, the demo's first part)
    "test_elbo": MetricNote("test ELBO", "ELBO on the test set: -(expected reconstruction NLL + KL term)",
                            "nats per example", "higher"),
    "test_nll": MetricNote("test NLL", "-log p(x) on the test set, importance-weighted estimate",
                           "nats per example", "lower"),
    "test_recon_nll": MetricNote(
        "recon NLL", "-log p(x | code) on the test set: averaged over the model's randomness (codes z ~ q(z|x), "
        "weight samples) where the run samples (vbayes bae, the comparison), else decoding the point code",
        "nats per example", "lower"),
    "test_kl": MetricNote("test KL", "KL(q(z|x) || p(z)) on the test set", "nats per example"),
    "val_elbo": MetricNote("val. ELBO", "ELBO on the validation set", "nats per example", "higher"),
    "val_recon_nll": MetricNote("val. recon NLL", "reconstruction NLL on the validation set", "nats per example",
                                "lower"),
    "kl_per_example": MetricNote("KL / example", "KL(q(w) || p(w)) / N_train", "nats per example"),
    "iw_samples": MetricNote("IW samples", "importance samples K per test example"),
    "predictive_samples": MetricNote("samples", "weight samples S per test input"),
    "gaussian_std": MetricNote("Gaussian std", "learned standard deviation of the Gaussian likelihood", "pixel units"),
    "mean_predictive_std": MetricNote(
        "pred. std", "per-pixel std of the reconstructions over the model's randomness (weight samples, or codes "
        "z ~ q(z|x)), averaged over pixels and test inputs", "pixel units"),
    "knn_accuracy": MetricNote("kNN acc.", "share of test codes whose 10 nearest training codes vote for the right "
                               "digit", better="higher"),
    "silhouette": MetricNote("silhouette", "silhouette of the test codes grouped by digit (1: tight separated "
                             "classes, 0: overlapping)", better="higher"),
    "latent_mean": MetricNote("latent mean", "mean per dimension of the test point codes"),
    "latent_std": MetricNote("latent std", "standard deviation per dimension of the test point codes"),
    "blend_mean_change": MetricNote(
        "blend mean Δ", "mean absolute pixel change between consecutive frames of blends of five digit pairs, "
        "averaged over the steps", "pixel units"),
    "blend_max_change": MetricNote("blend max Δ", "the same change at the largest step", "pixel units"),
    # training
    "epochs": MetricNote("epochs", "epochs run"),
    "best_epoch": MetricNote("best epoch", "epoch of the kept (best validation) weights"),
    "seconds_per_epoch": MetricNote("s / epoch", "training time per epoch", "s"),
    "train_examples": MetricNote("train examples", "training examples"),
}


def display(key: str) -> str:
    """The metric's table column name (``key`` with spaces for a metric without a note)."""
    note = NOTES.get(key)
    return note.display if note is not None else key.replace("_", " ")


def describe(key: str) -> str:
    """The metric's meaning, unit and direction in one line ("" for a metric without a note)."""
    note = NOTES.get(key)
    return note.describe() if note is not None else ""


def note_rows(metrics: Mapping[str, Any], keys: Iterable[str], others: bool = False) -> list[dict[str, Any]]:
    """``[{"metric", "value", "meaning"}]`` rows of the ``keys`` present in ``metrics``, in that
    order; with ``others`` the remaining metrics follow (meaning from :data:`NOTES` or "")."""
    keys = [k for k in keys if k in metrics]
    if others:
        keys += [k for k in metrics if k not in keys]
    return [{"metric": k, "value": metrics[k], "meaning": describe(k)} for k in keys]


def legend(keys: Iterable[str]) -> str:
    """``"display: meaning (unit); ..."`` for a table caption."""
    return "; ".join(f"{NOTES[k].display}: {NOTES[k].meaning}" + (f" ({NOTES[k].unit})" if NOTES[k].unit else "")
                     for k in keys)


def highlights(keys: Iterable[str]) -> dict[str, str]:
    """``{display: "max" | "min"}`` for the ``keys`` with a better direction (``Report.add_table``'s ``highlight``)."""
    return {NOTES[k].display: NOTES[k].highlight for k in keys if NOTES[k].highlight}  # type: ignore[misc]
