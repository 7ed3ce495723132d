"""Published UCI results to compare against (data, not code).

Lakshminarayanan, Pritzel & Blundell (2017), "Simple and Scalable Predictive Uncertainty
Estimation using Deep Ensembles", NeurIPS, Table 1: test RMSE and test negative
log-likelihood (nats), mean +- standard error over the 20 standard splits, for PBP
(Hernandez-Lobato & Adams 2015), MC dropout (Gal & Ghahramani 2016) and deep ensembles.
The yacht NLLs of PBP and MC dropout were printed without a standard error (``None``).

Two more rows from other sources: mean-field VI (Graves 2011) as reported in the PBP paper
(Hernandez-Lobato & Adams 2015, reprinted in Gal & Ghahramani 2016, Table 1), and the
matrix-variate Gaussian posterior VMG (Louizos & Welling 2016): its test NLL as listed, to 2
decimals and without a standard error, in google/uncertainty-baselines ``baselines/uci/README.md``
(no RMSE found: ``None``).
"""

from __future__ import annotations

CITATION = (
    "Lakshminarayanan, Pritzel & Blundell (2017), Simple and Scalable Predictive Uncertainty "
    "Estimation using Deep Ensembles, NeurIPS, Table 1 (reprinting PBP and MC dropout); VI (Graves 2011) "
    "from Hernandez-Lobato & Adams (2015) as reprinted by Gal & Ghahramani (2016), Table 1; VMG (Louizos & "
    "Welling 2016) NLL from google/uncertainty-baselines' UCI README"
)

PUBLISHED_METHODS = ("PBP", "MC dropout", "Deep ensemble", "VI", "VMG")

#: data set -> metric ("rmse" | "nll") -> published method -> (mean, standard error or None)
PUBLISHED: dict[str, dict[str, dict[str, tuple[float | None, float | None]]]] = {
    "boston": {
        "rmse": {"PBP": (3.01, 0.18), "MC dropout": (2.97, 0.85), "Deep ensemble": (3.28, 1.00),
                 "VI": (4.32, 0.29), "VMG": (None, None)},
        "nll": {"PBP": (2.57, 0.09), "MC dropout": (2.46, 0.25), "Deep ensemble": (2.41, 0.25),
                 "VI": (2.90, 0.07), "VMG": (2.46, None)},
    },
    "concrete": {
        "rmse": {"PBP": (5.67, 0.09), "MC dropout": (5.23, 0.53), "Deep ensemble": (6.03, 0.58),
                 "VI": (7.19, 0.12), "VMG": (None, None)},
        "nll": {"PBP": (3.16, 0.02), "MC dropout": (3.04, 0.09), "Deep ensemble": (3.06, 0.18),
                 "VI": (3.39, 0.02), "VMG": (3.01, None)},
    },
    "energy": {
        "rmse": {"PBP": (1.80, 0.05), "MC dropout": (1.66, 0.19), "Deep ensemble": (2.09, 0.29),
                 "VI": (2.65, 0.08), "VMG": (None, None)},
        "nll": {"PBP": (2.04, 0.02), "MC dropout": (1.99, 0.09), "Deep ensemble": (1.38, 0.22),
                 "VI": (2.39, 0.03), "VMG": (1.06, None)},
    },
    "yacht": {
        "rmse": {"PBP": (1.02, 0.05), "MC dropout": (1.11, 0.38), "Deep ensemble": (1.58, 0.48),
                 "VI": (6.89, 0.67), "VMG": (None, None)},
        "nll": {"PBP": (1.63, None), "MC dropout": (1.55, None), "Deep ensemble": (1.18, 0.21),
                 "VI": (3.43, 0.16), "VMG": (1.30, None)},
    },
}

#: which vbayes method reproduces which published row (for "within the published +-" checks)
COUNTERPART = {"dropout": "MC dropout", "ensemble": "Deep ensemble", "pbp": "PBP", "bbb": "VI", "mvg": "VMG"}


def published_for(name: str) -> dict[str, dict[str, tuple[float | None, float | None]]] | None:
    """The published numbers for data set ``name`` (folder name), or ``None`` when not tabulated."""
    return PUBLISHED.get(name.lower())
