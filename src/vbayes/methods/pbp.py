"""``pbp``: Probabilistic Backpropagation (Hernandez-Lobato & Adams, ICML 2015). Regression only.

Model. An MLP ``D -> hidden... -> 1`` with ReLUs whose weights (biases included, as an extra
input of mean 1) have factorised Gaussian posteriors ``N(m, v)``; each layer scales its input
``[z, 1]`` by ``1 / sqrt(n_in + 1)``. Likelihood ``N(y | f(x), 1 / tau)`` with a
``Gamma(a, b)`` posterior on the noise precision ``tau``; prior ``N(w | 0, 1 / lambda)`` on every
(scaled) weight with a shared ``Gamma(lambda | a_w, b_w)`` hyper-prior.

Fit (the order of the reference code). Initial means ``N(0, 1 / (n_in + 1))``, variances
``b_w / (a_w - 1)``, ``a = a_w = 6``, ``b = b_w = 6 * var`` (var = 1: targets arrive
standardised, see :func:`vbayes.studies.uq.pipeline.fit_regression`). Each epoch is one
assumed-density-filtering pass over the training points in a random order, one example at a
time: the output moments are propagated forward (moment matching through the ReLUs, with the
safe asymptotic branch), ``log Z = log N(y | m_out, v_out + b / (a - 1))``, and every weight
moves by ``m += v dlogZ/dm``, ``v -= v^2 ((dlogZ/dm)^2 - 2 dlogZ/dv)``, with invalid updates
(``v <= 1e-100`` or NaN) reverted; ``a``, ``b`` are moment-matched from ``log Z``, ``log Z1``,
``log Z2``. Each pass is followed by one EP sweep that refines the prior sites and ``a_w``,
``b_w``. See :mod:`vbayes.methods.pbp_moments` for the formulas. Float64 throughout.

Two deviations from the Theano reference, both where it would produce NaNs: the normal CDF is
computed by ``erfc`` (the reference's ``(1 + erf) / 2`` is 2% off at ``alpha = -8`` and exactly 0
below about -8.5, so ``phi / Phi`` is infinite and the moments NaN between -30 and -8.5: with
such a CDF (``torch.special.ndtr`` rounds the same way) this code found a NaN ``log Z`` in 45% of
the updates on boston split 0, and NaN predictions for 3 of its first 5 test points); and a noise update that is not
finite or leaves ``a <= 1`` or ``b <= 0`` is rejected (the reference guards only the weights).

Predictive. PBP's predictive is one Gaussian per input, ``N(m_out, v_out + b / (a - 1))``:
``v_out`` is the epistemic part (the weights' uncertainty pushed through the network), the
noise variance ``b / (a - 1)`` the aleatoric part. A :class:`RegressionPrediction` is an
equal-weight mixture of S Gaussians whose ``sigma`` is the aleatoric noise and whose spread of
``mu`` is the epistemic part, so ``predict`` returns S = ``n_samples`` rows
``mu_s = m_out + sqrt(v_out) z_s``, ``sigma_s = sqrt(b / (a - 1))``, with ``z_s`` the
deterministic normal quantiles at ``(s + 1/2) / S`` rescaled to unit variance. Mean, epistemic
variance and total variance are then exactly PBP's, and the epistemic bands and gap ratios of
``vbayes uq`` show PBP's ``v_out``; the mixture density differs from the Gaussian only where
``v_out`` exceeds the noise variance several-fold (with S = 100 the KL from PBP's Gaussian is
7e-6 nats at ``v_out`` = noise, 3e-3 at 10x, 0.07 at 100x). ``n_samples=1`` returns the exact
Gaussian itself (``sigma = sqrt(v_out + b / (a - 1))``, no epistemic split). Prediction draws
no random numbers.

Options: ``n_samples`` (100), ``steps`` (None: ADF updates, i.e. single examples, used when
``epochs`` is None; None means the default of 40 epochs), ``noise`` (``homoscedastic``, the
same as ``gamma``: the Gamma posterior on the precision; or ``fixed``: the known variance
``noise_std^2``, no noise updates), ``noise_std`` (fixed noise, or with a learned noise the
prior's scale: ``b = 6 noise_std^2``; standardised units; None: 1), ``prior_std`` (None: the
Gamma hyper-prior refined by EP; a number: a fixed prior ``N(0, prior_std^2)`` on each scaled
weight, i.e. ``N(0, prior_std^2 / (n_in + 1))`` on the raw weight, and no refinement).

``info``: ``epochs`` (passes, fractional with ``steps``), ``steps`` (ADF updates),
``noise_a``, ``noise_b``, ``noise_std`` (``sqrt(b / (a - 1))``, standardised units),
``weight_prec_a``, ``weight_prec_b`` (the Gamma on the weight precision), ``reverted_updates``
(weight entries whose update the guard reverted, over all updates), ``reverted_noise_updates``,
``skipped_prior_sites``, ``nonfinite_updates`` and ``seconds_per_update``. The pipeline records
``fit_seconds`` itself.
"""

from __future__ import annotations

import math
import numbers
import time
from typing import Any, ClassVar

import torch
from torch import Tensor

from vbayes.errors import VBayesError
from vbayes.methods.base import Method, Prediction
from vbayes.methods.noise import check_noise
from vbayes.methods.pbp_moments import PBPState, adf_update, forward_moments, init_sites, refine_prior
from vbayes.methods.predictive import RegressionPrediction

DEFAULT_EPOCHS = 40
PRIOR_SAMPLES = 3.0
"""The reference's Gamma priors count as ``2 * 3`` pseudo-observations: ``a = 6``, ``b = 6 var``."""


def quantile_nodes(s: int) -> Tensor:
    """``(S,)`` float64 standard-normal quantiles at ``(i + 1/2) / S``, rescaled to mean 0 and
    unit (population) variance; ``[0.]`` for S = 1."""
    if s == 1:
        return torch.zeros(1, dtype=torch.float64)
    u = (torch.arange(s, dtype=torch.float64) + 0.5) / s
    z = math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)
    z = z - z.mean()
    return z / z.pow(2).mean().sqrt()


class PBPMethod(Method):
    """Probabilistic Backpropagation: ADF with moment matching, Gamma noise and weight-precision
    priors, EP refinement of the prior once per epoch (see the module docstring)."""

    name: ClassVar[str] = "pbp"
    defaults: ClassVar[dict[str, Any]] = {
        "n_samples": 100,
        "steps": None,
        "noise": "homoscedastic",
        "noise_std": None,
        "prior_std": None,
    }

    def __init__(self, task: str = "regression", *args: Any, **kwargs: Any) -> None:
        if task == "classification":
            raise VBayesError("pbp is for regression only (its moment matching needs a Gaussian likelihood)")
        super().__init__(task, *args, **kwargs)
        n = self.options["n_samples"]
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise VBayesError(f"pbp: n_samples must be an integer >= 1, got {n!r}")
        steps = self.options["steps"]
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1):
            raise VBayesError(f"pbp: steps must be an integer >= 1 or None, got {steps!r}")
        if self.options["prior_std"] is not None:
            self.prior_std()  # checks > 0

    def _check_noise_options(self) -> None:
        noise = self.options["noise"]
        if noise not in ("homoscedastic", "gamma", "fixed"):
            raise VBayesError(f"pbp: unknown noise {noise!r}; choose homoscedastic (PBP's Gamma posterior on the "
                              "noise precision, also called gamma) or fixed")
        check_noise("fixed" if noise == "fixed" else "homoscedastic", self.options["noise_std"], self.name)

    # -- fit ---------------------------------------------------------------------------------
    def _initial_state(self, d: int, gen: torch.Generator) -> PBPState:
        sizes = (d, *self.hidden, 1)
        if self.options["prior_std"] is None:
            prior_var = PRIOR_SAMPLES * 2 / (PRIOR_SAMPLES * 2 - 1.0)  # b_w / (a_w - 1) = 6 / 5
        else:
            prior_var = self.prior_std() ** 2
        m, v = [], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            m.append(torch.randn(n_out, n_in + 1, generator=gen, dtype=torch.float64) / math.sqrt(n_in + 1))
            v.append(torch.full((n_out, n_in + 1), prior_var, dtype=torch.float64))
        std = self.options["noise_std"]
        var0 = 1.0 if std is None else float(std) ** 2
        a = 2.0 * PRIOR_SAMPLES
        fixed = var0 if self.options["noise"] == "fixed" else None
        return PBPState(m=m, v=v, a=a, b=a * var0, noise_var=fixed)

    def _n_updates(self, n: int) -> int:
        if self.epochs is not None:
            return self.epochs * n
        if self.options["steps"] is not None:
            return int(self.options["steps"])
        return DEFAULT_EPOCHS * n

    def _fit(self, x: Tensor, y: Tensor) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        x64, y64 = x.double(), y.double().tolist()
        n = x64.shape[0]
        state = self._initial_state(x64.shape[1], gen)
        refine = self.options["prior_std"] is None
        sites = init_sites(state.m, 2.0 * PRIOR_SAMPLES, 2.0 * PRIOR_SAMPLES) if refine else None
        rows = list(x64.unbind(0))
        total, done = self._n_updates(n), 0
        start = time.perf_counter()
        while done < total:
            order = torch.randperm(n, generator=gen)[: total - done].tolist()
            for i in order:
                adf_update(state, rows[i], y64[i])
            done += len(order)
            if sites is not None:
                refine_prior(state, sites)
        elapsed = time.perf_counter() - start
        self.state = state
        self.info.update(
            epochs=done / n, steps=done, noise_a=state.a, noise_b=state.b,
            noise_std=math.sqrt(state.noise_variance()), reverted_updates=state.reverted,
            reverted_noise_updates=state.reverted_noise, nonfinite_updates=state.nonfinite,
            seconds_per_update=elapsed / max(done, 1),
        )
        if sites is not None:
            self.info.update(weight_prec_a=sites.a_w, weight_prec_b=sites.b_w, skipped_prior_sites=sites.skipped)
        finite = all(bool(torch.isfinite(t).all()) for t in (*state.m, *state.v))
        if not finite or state.nonfinite > done // 2:
            self.info["error"] = (f"training diverged: non-finite log Z in {state.nonfinite} of {done} ADF updates"
                                  if finite else "training diverged: non-finite weight moments")

    # -- predict -----------------------------------------------------------------------------
    def moments(self, x: Tensor) -> tuple[Tensor, Tensor, float]:
        """PBP's predictive at ``x`` ``(M, D)``: ``m_out``, ``v_out`` ``(M,)`` float64 (epistemic)
        and the noise variance ``b / (a - 1)`` (aleatoric), standardised units."""
        mean, var = forward_moments(self.state.m, self.state.v, x.double())
        return mean, var, self.state.noise_variance()

    def _predict(self, x: Tensor) -> Prediction:
        mean, var, noise = self.moments(x)
        s = int(self.options["n_samples"])
        if s == 1:
            mu, sigma = mean[None], (var + noise).sqrt()[None]
        else:
            mu = mean[None] + var.clamp_min(0).sqrt()[None] * quantile_nodes(s)[:, None]
            sigma = torch.full_like(mu, math.sqrt(noise))
        return RegressionPrediction(mu=mu.float(), sigma=sigma.float(), info=dict(self.info))
