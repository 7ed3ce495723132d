"""Data sets: ``load(name, ...)`` and the image helpers."""

from vbayes.data.images import ImageData, binarize, fixed_binarization
from vbayes.data.registry import load, names

__all__ = ["ImageData", "binarize", "fixed_binarization", "load", "names"]
