"""The machinery shared by every Bayesian layer: posterior parameters, modes, KL and its cache.

A :class:`VariationalLayer` holds a mean-field Gaussian posterior q(w) = N(mu, sigma^2) per
weight and bias, with sigma = softplus(rho). Concrete layers combine an *estimator* (how the
forward pass samples: reparam.py, flipout.py, lrt.py) with an *operation* (linear, conv,
transposed conv: _ops.py). The forward pass computes the layer's KL to its prior in the same
fused call that draws the sample and caches it; :meth:`kl_divergence` returns that cached value
while the parameters are unchanged, so the KL costs one evaluation per step, not two.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vbayes.layers._fused import PosteriorSample, softplus_inverse
from vbayes.layers.base import BayesianModule
from vbayes.layers.priors import Normal, as_prior, kl_normal_to_prior

DEFAULT_POSTERIOR_STD = 1e-3
"""Initial posterior standard deviation: small, so that a fresh layer starts out close to a
deterministic one and learns first; the KL term then widens sigma where the data allow."""

MIN_MOPED_STD = 1e-8
"""Floor of the MOPED sigma = delta * |w| (a weight of exactly 0 would give rho = -inf)."""


class VariationalLayer(BayesianModule):
    """Base of all Bayesian layers (not instantiated directly).

    Attributes:
        weight_mu, weight_rho: parameters of the weight posterior, shape ``weight_shape``.
        bias_mu, bias_rho: parameters of the bias posterior, shape ``(out,)``, or ``None``.
        prior: a scalar ``torch.distributions.Distribution`` (default ``priors.Normal(0, 1)``).
        generator: optional ``torch.Generator`` used for every draw of this layer.
        sampling: ``"sample"`` or ``"mean"`` (see :func:`vbayes.sampling_mode`).
    """

    estimator: str = ""

    def _init_posterior(self, weight_shape: tuple[int, ...], bias_size: int | None, fan_in: int,
                        prior: Any, posterior_std_init: float, device: Any, dtype: Any) -> None:
        name = type(self).__name__
        try:
            std = float(posterior_std_init)
        except (TypeError, ValueError):
            raise TypeError(f"{name}: posterior_std_init must be a number, got {posterior_std_init!r}") from None
        if not (std > 0 and math.isfinite(std)):
            raise ValueError(f"{name}: posterior_std_init must be a finite number > 0, got {posterior_std_init}")
        kw = {"device": device, "dtype": dtype}
        self.posterior_std_init = std
        self.prior = as_prior(prior, name)
        self.generator: torch.Generator | None = None
        self.weight_mu = nn.Parameter(torch.empty(weight_shape, **kw))
        self.weight_rho = nn.Parameter(torch.empty(weight_shape, **kw))
        if bias_size is not None:
            self.bias_mu = nn.Parameter(torch.empty(bias_size, **kw))
            self.bias_rho = nn.Parameter(torch.empty(bias_size, **kw))
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_rho", None)
        self._fan_in = fan_in
        self._kl_cache: tuple[tuple, Tensor] | None = None
        self._frozen_eps: dict[str, Tensor] | None = None
        self.reset_parameters()

    # ----------------------------------------------------------------- parameters
    def reset_parameters(self) -> None:
        """mu as ``torch.nn`` initialises its weights (U(-1/sqrt(fan_in), 1/sqrt(fan_in)));
        sigma = ``posterior_std_init`` everywhere."""
        bound = 1.0 / math.sqrt(self._fan_in) if self._fan_in > 0 else 0.0
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.weight_mu, a=math.sqrt(5))
            rho = softplus_inverse(torch.tensor(self.posterior_std_init, dtype=torch.float64)).item()
            self.weight_rho.fill_(rho)
            if self.bias_mu is not None:
                nn.init.uniform_(self.bias_mu, -bound, bound)
                self.bias_rho.fill_(rho)

    @property
    def weight_std(self) -> Tensor:
        """Posterior standard deviation of the weights, softplus(weight_rho) (weight shape)."""
        return F.softplus(self.weight_rho)

    @property
    def bias_std(self) -> Tensor | None:
        """Posterior standard deviation of the biases ``(out,)``, or ``None`` without bias."""
        return None if self.bias_rho is None else F.softplus(self.bias_rho)

    @torch.no_grad()
    def load_deterministic(self, weight: Tensor, bias: Tensor | None = None,
                           moped_delta: float | None = None) -> None:
        """Set mu from a trained deterministic layer's ``weight`` / ``bias`` (same shapes).

        With ``moped_delta`` (MOPED, Krishnan et al. 2020) sigma = delta * |w| (floored at
        ``MIN_MOPED_STD``); otherwise sigma keeps its current value.
        """
        name = type(self).__name__
        if tuple(weight.shape) != tuple(self.weight_mu.shape):
            raise ValueError(f"{name}: weight of shape {tuple(weight.shape)} does not match "
                             f"{tuple(self.weight_mu.shape)}")
        pairs = [(self.weight_mu, self.weight_rho, weight)]
        if bias is not None and self.bias_mu is not None:
            pairs.append((self.bias_mu, self.bias_rho, bias))
        for mu, rho, value in pairs:
            mu.copy_(value)
            if moped_delta is not None:
                std = (float(moped_delta) * value.detach().abs().to(torch.float64)).clamp_min(MIN_MOPED_STD)
                rho.copy_(softplus_inverse(std))

    # ----------------------------------------------------------------- sampling
    def _sample_params(self, mode: str) -> tuple[Tensor, Tensor | None]:
        """Weight and bias tensors in ``mode`` ("weight", "delta", "var"); caches the KL.

        In frozen mode the eps drawn first inside the block are reused.
        """
        want_kl = torch.is_grad_enabled()
        has_bias = self.bias_mu is not None
        params = (self.weight_mu, self.weight_rho, self.bias_mu, self.bias_rho) if has_bias else (
            self.weight_mu, self.weight_rho)
        eps = None
        if self._frozen_eps is not None and mode != "var":
            if not self._frozen_eps:
                for name, mu in (("weight", self.weight_mu), ("bias", self.bias_mu)):
                    if mu is not None:
                        self._frozen_eps[name] = torch.randn(mu.shape, generator=self.generator,
                                                             dtype=mu.dtype, device=mu.device)
            eps = tuple(self._frozen_eps[k] for k in ("weight", "bias") if k in self._frozen_eps)
        prior = self.prior
        closed = want_kl and isinstance(prior, Normal)
        res = PosteriorSample.apply(mode, prior.loc_value if closed else 0.0,
                                    prior.scale_value if closed else None, self.generator, eps, *params)
        w, b = res[0], (res[1] if has_bias else None)
        if want_kl:
            if closed:
                kl = res[-1]
            else:  # no closed form: Monte-Carlo estimate at the posterior sample drawn
                kl = self._mc_kl(w if mode == "weight" else None, b if mode == "weight" else None,
                                 w if mode == "delta" else None, b if mode == "delta" else None)
            self._kl_cache = (self._param_key(), kl)
        return w, b

    def _mc_kl(self, w: Tensor | None, b: Tensor | None, dw: Tensor | None, db: Tensor | None) -> Tensor:
        kl = kl_normal_to_prior(self.weight_mu, self.weight_std, self.prior,
                                sample=w if dw is None else self.weight_mu + dw, generator=self.generator)
        if self.bias_mu is not None:
            sample_b = b if db is None else self.bias_mu + db
            kl = kl + kl_normal_to_prior(self.bias_mu, self.bias_std, self.prior, sample=sample_b,
                                         generator=self.generator)
        return kl

    def _param_key(self) -> tuple:
        params = (self.weight_mu, self.weight_rho, self.bias_mu, self.bias_rho)
        return tuple(-1 if p is None else p._version for p in params) + (id(self.prior),)

    # ----------------------------------------------------------------- KL
    def kl_divergence(self) -> Tensor:
        """KL(q(w, b) || prior) of this layer, summed over weights and biases (0-dim, nats).

        Closed form for a ``priors.Normal`` prior, otherwise a one-sample Monte-Carlo estimate.
        After a forward pass in sample mode this returns the value computed by that pass (one
        evaluation per step) as long as the parameters have not changed since.
        """
        cache = self._kl_cache
        if cache is not None and cache[0] == self._param_key() and (
            cache[1].requires_grad or not torch.is_grad_enabled()
        ):
            return cache[1]
        return self._mc_kl(None, None, None, None)

    # ----------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """Output of one posterior draw (or of the posterior mean in "mean" mode); see the class."""
        self._check_input(x)
        if self.sampling == "mean":
            return self._op(x, self.weight_mu, self.bias_mu)
        if self.sampling != "sample":
            raise ValueError(f"{type(self).__name__}: sampling must be 'sample' or 'mean', got {self.sampling!r}")
        if self._frozen_eps is not None:
            w, b = self._sample_params("weight")
            return self._op(x, w, b)
        return self._forward_sample(x)

    def _forward_sample(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _op(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _check_input(self, x: Tensor) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_kl_cache"] = None  # holds a graph; neither picklable nor deep-copyable
        return state
