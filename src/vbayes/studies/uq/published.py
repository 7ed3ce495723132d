"""Published UCI results to compare against (data, not code).

Lakshminarayanan, Pritzel & Blundell (2017), "Simple and Scalable Predictive Uncertainty
Estimation using Deep Ensembles", NeurIPS, Table 1: test RMSE and test negative
log-likelihood (nats), mean +- standard error over the 20 standard splits, for PBP
(Hernandez-Lobato & Adams 2015), MC dropout (Gal & Ghahramani 2016) and deep ensembles.
The yacht NLLs of PBP and MC dropout were printed without a standard error (``None``).
"""

from __future__ import annotations

CITATION = (
    "Lakshminarayanan, Pritzel & Blundell (2017), Simple and Scalable Predictive Uncertainty "
    "Estimation using Deep Ensembles, NeurIPS, Table 1 (reprinting PBP and MC dropout)"
)

PUBLISHED_METHODS = ("PBP", "MC dropout", "Deep ensemble")

#: data set -> metric ("rmse" | "nll") -> published method -> (mean, standard error or None)
PUBLISHED: dict[str, dict[str, dict[str, tuple[float, float | None]]]] = {
    "boston": {
        "rmse": {"PBP": (3.01, 0.18), "MC dropout": (2.97, 0.85), "Deep ensemble": (3.28, 1.00)},
        "nll": {"PBP": (2.57, 0.09), "MC dropout": (2.46, 0.25), "Deep ensemble": (2.41, 0.25)},
    },
    "concrete": {
        "rmse": {"PBP": (5.67, 0.09), "MC dropout": (5.23, 0.53), "Deep ensemble": (6.03, 0.58)},
        "nll": {"PBP": (3.16, 0.02), "MC dropout": (3.04, 0.09), "Deep ensemble": (3.06, 0.18)},
    },
    "energy": {
        "rmse": {"PBP": (1.80, 0.05), "MC dropout": (1.66, 0.19), "Deep ensemble": (2.09, 0.29)},
        "nll": {"PBP": (2.04, 0.02), "MC dropout": (1.99, 0.09), "Deep ensemble": (1.38, 0.22)},
    },
    "yacht": {
        "rmse": {"PBP": (1.02, 0.05), "MC dropout": (1.11, 0.38), "Deep ensemble": (1.58, 0.48)},
        "nll": {"PBP": (1.63, None), "MC dropout": (1.55, None), "Deep ensemble": (1.18, 0.21)},
    },
}

#: which vbayes method reproduces which published row (for "within the published +-" checks)
COUNTERPART = {"dropout": "MC dropout", "ensemble": "Deep ensemble"}


def published_for(name: str) -> dict[str, dict[str, tuple[float, float | None]]] | None:
    """The published numbers for data set ``name`` (folder name), or ``None`` when not tabulated."""
    return PUBLISHED.get(name.lower())
