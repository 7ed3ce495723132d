"""Measurements that compare auto-encoders: latent-space separability and continuity, a digit
classifier used as a judge, and the search for ambiguous inputs.

``vbayes.studies.autoencoders.compare.compare_autoencoders`` (imported on demand, it trains models)
runs the whole AE / VAE / Bayesian-AE comparison.
"""

from vbayes.studies.autoencoders.ambiguous import Ambiguity, AmbiguityCounter, find_ambiguous
from vbayes.studies.autoencoders.classifier import ClassifierResult, DigitClassifier, train_digit_classifier
from vbayes.studies.autoencoders.latent import (
    blend_changes,
    blend_smoothness,
    interpolate_codes,
    knn_accuracy,
    latent_moments,
    silhouette,
)

__all__ = [
    "Ambiguity",
    "AmbiguityCounter",
    "ClassifierResult",
    "DigitClassifier",
    "blend_changes",
    "blend_smoothness",
    "find_ambiguous",
    "interpolate_codes",
    "knn_accuracy",
    "latent_moments",
    "silhouette",
    "train_digit_classifier",
]
