"""Measurements of a latent space: separability, location and spread, and continuity.

Every function takes plain tensors (or arrays) so that it applies to any encoder: the AE's
codes, the VAE's posterior means or samples, the Bayesian AE's sampled codes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

ArrayLike = Tensor | np.ndarray


def _np(a: ArrayLike) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _check_codes(name: str, z: np.ndarray, y: np.ndarray | None = None) -> None:
    if z.ndim != 2:
        raise ValueError(f"{name}: codes must be (N, D), got shape {tuple(z.shape)}")
    if not np.isfinite(z).all():
        raise ValueError(f"{name}: codes contain non-finite values")
    if y is not None and (y.ndim != 1 or len(y) != len(z)):
        raise ValueError(f"{name}: labels must be ({len(z)},), got shape {tuple(y.shape)}")


def knn_accuracy(
    z_fit: ArrayLike, y_fit: ArrayLike, z_eval: ArrayLike, y_eval: ArrayLike, k: int = 10
) -> float:
    """Accuracy of a k-nearest-neighbour vote (Euclidean) for the label in the latent space.

    Args:
        z_fit: ``(M, D)`` codes of the reference set (e.g. the training set), ``y_fit`` ``(M,)``.
        z_eval: ``(N, D)`` codes to classify (e.g. the test set), ``y_eval`` ``(N,)``.
        k: number of neighbours (ties of the vote go to the nearer neighbour's class).

    Returns:
        The fraction in [0, 1] of ``z_eval`` whose majority label among the k nearest
        ``z_fit`` equals ``y_eval``.
    """
    from sklearn.neighbors import KNeighborsClassifier

    zf, yf, ze, ye = _np(z_fit), _np(y_fit), _np(z_eval), _np(y_eval)
    _check_codes("knn_accuracy z_fit", zf, yf)
    _check_codes("knn_accuracy z_eval", ze, ye)
    if zf.shape[1] != ze.shape[1]:
        raise ValueError(f"knn_accuracy: z_fit has {zf.shape[1]} dimensions, z_eval {ze.shape[1]}")
    if not 1 <= k <= len(zf):
        raise ValueError(f"knn_accuracy: k must be in [1, {len(zf)}], got {k}")
    clf = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(zf, yf)
    return float((clf.predict(ze) == ye).mean())


def silhouette(z: ArrayLike, y: ArrayLike, max_points: int | None = 5000, seed: int = 0) -> float:
    """Mean silhouette coefficient of the codes grouped by class label, in [-1, 1].

    For a point, a = mean distance to its own class, b = the smallest mean distance to another
    class, s = (b - a) / max(a, b); the score is the mean of s over points. Near 1: tight,
    well-separated classes; near 0: overlapping classes.

    Args:
        z: ``(N, D)`` codes; y: ``(N,)`` labels with at least two classes.
        max_points: evaluate on a fixed random subset of this many points (the cost is
            quadratic in N); ``None`` uses all.
        seed: seed of that subset.
    """
    from sklearn.metrics import silhouette_score

    zn, yn = _np(z), _np(y)
    _check_codes("silhouette", zn, yn)
    if len(np.unique(yn)) < 2:
        raise ValueError("silhouette: needs at least two classes")
    sample = None if max_points is None or len(zn) <= max_points else max_points
    return float(silhouette_score(zn, yn, sample_size=sample, random_state=seed))


def latent_moments(z: ArrayLike) -> tuple[list[float], list[float]]:
    """Per-dimension mean and standard deviation (population, ddof=0) of ``(N, D)`` codes."""
    zn = _np(z).astype(np.float64)
    _check_codes("latent_moments", zn)
    return zn.mean(0).tolist(), zn.std(0).tolist()


def blend_changes(frames: ArrayLike) -> np.ndarray:
    """Mean absolute pixel change between consecutive frames of one blend.

    Args:
        frames: ``(T, ...)`` decoded frames in [0, 1], T >= 2, in interpolation order.

    Returns:
        ``(T-1,)`` array: for each step t, the mean over pixels of |frame[t+1] - frame[t]|.
    """
    f = _np(frames).astype(np.float64)
    if f.ndim < 2 or f.shape[0] < 2:
        raise ValueError(f"blend_changes: need (T>=2, ...) frames, got shape {tuple(f.shape)}")
    flat = f.reshape(f.shape[0], -1)
    return np.abs(np.diff(flat, axis=0)).mean(1)


def blend_smoothness(blends: list[ArrayLike] | ArrayLike) -> dict[str, float]:
    """Continuity of decoded interpolations, over one or several blends.

    Args:
        blends: one ``(T, ...)`` frame tensor or a list of them (several digit pairs).

    Returns:
        ``{"mean_change": ..., "max_change": ...}``: the mean over all steps of all blends of the
        mean absolute pixel change between consecutive frames, and the largest single step.
        A smooth decoder spreads the change evenly (max close to mean); a jump shows as a max
        much larger than the mean.
    """
    items = blends if isinstance(blends, list) else [blends]
    if not items:
        raise ValueError("blend_smoothness: no blends given")
    changes = np.concatenate([blend_changes(b) for b in items])
    return {"mean_change": float(changes.mean()), "max_change": float(changes.max())}


def interpolate_codes(z_a: Tensor, z_b: Tensor, steps: int) -> Tensor:
    """``(steps, D)`` codes on the straight line from ``z_a`` to ``z_b`` (both ``(D,)``), ends included."""
    if steps < 2:
        raise ValueError(f"interpolate_codes: steps must be >= 2, got {steps}")
    t = torch.linspace(0.0, 1.0, steps, dtype=z_a.dtype, device=z_a.device).unsqueeze(1)
    return (1 - t) * z_a.unsqueeze(0) + t * z_b.unsqueeze(0)
