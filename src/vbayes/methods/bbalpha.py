"""``bbalpha``: black-box alpha-divergence minimisation (Hernandez-Lobato et al. 2016).

The network and q are those of ``bbb`` (:class:`~vbayes.methods.variational.VariationalMethod`:
mean-field Gaussian weights, ``LinearReparam`` layers, the shared prior and noise model); only
the training objective differs. With tied factors the BB-alpha energy is, in the form of Li &
Gal (2017, section 3),

    E_alpha(q) = KL(q || p) - (1 / alpha) sum_n log E_q[ p(y_n | x_n, w)^alpha ],

estimated on a minibatch B with ``train_samples`` = K weight draws ``w_k ~ q``, each shared by the
whole batch (one forward pass per draw), so that the average over draws sits inside the log for
every data point:

    E / N ~= KL / N - (1 / alpha) mean_{n in B} logmeanexp_k( alpha log p(y_n | x_n, w_k) ).

As alpha -> 0 the data term tends to ``-mean_n E_q log p(y_n | x_n, w)``: the negative ELBO / N
of ``bbb``; alpha = 1 is EP-like and gives wider posteriors (mass-covering). Li & Gal write the
tied-factor energy of the paper with a Renyi divergence of order N / (N - alpha) in place of the
KL; the two agree as N grows, and the KL form is the one used here. The estimate of the log of an
expectation is biased for finite K (less so as K grows).

``info["energy"]`` is the final energy per training point (the same estimator, ``elbo_samples``
draws, computed in chunks of ``train_samples`` draws and averaged); ``info["elbo"]`` is the ELBO
of the fitted q as for ``bbb``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from vbayes.errors import VBayesError
from vbayes.layers import kl_divergence
from vbayes.methods.variational import VariationalMethod


def alpha_data_term(loglik: Tensor, alpha: float) -> Tensor:
    """``-(1 / alpha) mean_n logmeanexp_k(alpha * loglik[k, n])`` of ``loglik`` ``(K, B)``, the
    log-likelihood of point n under weight draw k (a scalar)."""
    draws = loglik.shape[0]
    return -((torch.logsumexp(alpha * loglik, dim=0) - math.log(draws)) / alpha).mean()


class BBAlphaMethod(VariationalMethod):
    """Black-box alpha-divergence minimisation with mean-field Gaussian weights.

    Options (besides those of :class:`~vbayes.methods.variational.VariationalMethod`):
        alpha: the divergence's alpha in (0, 1] (0.5; -> 0 is VI, 1 is EP-like).
        train_samples: K, the weight draws of a step, each shared by the batch (10).
    ``kl_weight`` and ``kl_warmup`` scale the KL / N term as for ``bbb``.
    """

    name: ClassVar[str] = "bbalpha"
    estimator: ClassVar[str] = "reparam"
    defaults: ClassVar[dict[str, Any]] = {**VariationalMethod.defaults, "alpha": 0.5, "train_samples": 10}

    def _check_method_options(self) -> None:
        self._alpha()

    def _alpha(self) -> float:
        try:
            alpha = float(self.options["alpha"])
        except (TypeError, ValueError):
            raise VBayesError(f"{self.name}: alpha must be a number in (0, 1], got {self.options['alpha']!r}") from None
        if not 0.0 < alpha <= 1.0:
            raise VBayesError(f"{self.name}: alpha must be in (0, 1], got {self.options['alpha']!r}")
        return alpha

    def _fit(self, x: Tensor, y: Tensor) -> None:
        self._alpha()  # fail before training
        super()._fit(x, y)
        if "error" not in self.info:
            self.info["energy"] = self.energy(x, y, int(self.options["elbo_samples"]))

    def _data_loss(self, x: Tensor, y: Tensor, draws: int) -> Tensor:
        return alpha_data_term(-self._nll(x, y, draws, repeat=False), self._alpha())

    @torch.no_grad()
    def energy(self, x: Tensor, y: Tensor, draws: int = 1000) -> float:
        """The energy per point ``E_alpha / N`` of the training set ``x``, ``y`` (N points), the
        data term averaged over chunks of ``train_samples`` draws (the training estimator)."""
        self.model.eval()
        k = int(self.options["train_samples"])
        chunks = max(1, draws // k)
        data = sum(float(self._data_loss(x, y, k)) for _ in range(chunks)) / chunks
        return data + float(kl_divergence(self.model)) / x.shape[0]
