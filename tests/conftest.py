"""Shared test configuration: one BLAS thread per test run keeps timings stable on 2 cores."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
