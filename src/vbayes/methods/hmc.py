"""``hmc``: full-batch Hamiltonian Monte Carlo over all the weights of a small network.

Model. An MLP ``D -> hidden... -> K`` whose parameters of all chains form one ``(C, P)`` tensor;
the forward pass is a batched matmul over chains (``torch.baddbmm``), so C chains cost one
computation. Prior: weights and biases ``N(0, prior_std^2 / fan_in)`` (so the prior over functions
stays O(1) as the width grows, Neal 1996; the convention of all methods).
Regression likelihood ``N(y | f(x), 1 / tau)``: with ``noise="homoscedastic"`` (default; ``"gamma"``
is the same) the precision
tau is sampled too, as ``log tau`` with a ``Gamma(gamma_shape, gamma_rate)`` prior on tau (rate
0.01: weak; on standardised targets the data decide); with ``noise="fixed"`` tau is
``1 / noise_std^2``. Classification likelihood: softmax / categorical.

Sampling: :func:`~vbayes.methods.hmc_sampler.sample_hmc` (windowed step-size and diagonal mass
adaptation). Chains start from ``init="map"`` (a short Adam run per chain from a prior draw,
all chains at once) or ``init="prior"`` (the prior draw itself).

Diagnostics in ``info``: ``rhat_max`` / ``ess_min`` are the rank-normalised split R-hat and bulk
ESS over function-space quantities (the network output at up to 50 training inputs, plus
``log tau``), which are identifiable; weights are not (hidden units can be permuted), so their
figures ``rhat_max_params`` / ``ess_min_params`` are reported apart. Also ``divergences``
(post-warm-up only) and ``warmup_divergences`` (during adaptation, where dual averaging's trial
step sizes make some expected), ``step_size`` (mean over chains), ``accept_rate`` (mean
acceptance probability of the sampling iterations, at the final step size), ``target_accept``,
``warmup_accept_rate`` (the mean acceptance statistic over warm-up, which dual averaging drives
to ``target_accept``; ``accept_rate`` ends above it, see :mod:`vbayes.methods.hmc_sampler`),
``ess_per_second`` (ess_min over warm-up + sampling time) and ``grad_evals``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from vbayes.errors import VBayesError
from vbayes.methods.base import Method, Prediction
from vbayes.methods.diagnostics import summarize
from vbayes.methods.noise import check_noise
from vbayes.methods.hmc_sampler import sample_hmc
from vbayes.methods.predictive import ClassificationPrediction, RegressionPrediction

_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "gelu": F.gelu, "elu": F.elu}


class BatchedMLP:
    """An MLP evaluated for C parameter vectors at once.

    ``sizes = (D, h1, ..., K)``; ``n_params`` = sum of ``fan_in * fan_out + fan_out``.
    Layout of a parameter vector: for each layer, the ``(fan_in, fan_out)`` weight row-major,
    then the ``(fan_out,)`` bias.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu") -> None:
        if activation not in _ACTIVATIONS:
            raise VBayesError(f"unknown activation {activation!r}; choose one of: {', '.join(_ACTIVATIONS)}")
        self.sizes = tuple(int(s) for s in sizes)
        self.act = _ACTIVATIONS[activation]
        self.n_params = sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    def prior_std(self, prior_std: float) -> Tensor:
        """``(n_params,)`` prior standard deviations: ``prior_std / sqrt(fan_in)`` for every
        weight and bias of a layer (the convention of all methods)."""
        parts = []
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            parts.append(torch.full((a * b + b,), prior_std / math.sqrt(a)))
        return torch.cat(parts)

    def _layers(self, theta: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Weights ``(C, fan_in, fan_out)`` and biases ``(C, 1, fan_out)`` as views of ``theta``."""
        c = theta.shape[0]
        out, off = [], 0
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            w = theta[:, off : off + a * b].reshape(c, a, b)
            off += a * b
            out.append((w, theta[:, off : off + b].unsqueeze(1)))
            off += b
        return out

    def __call__(self, theta: Tensor, x: Tensor) -> Tensor:
        """``theta`` ``(C, >= n_params)``, ``x`` ``(N, D)`` -> outputs ``(C, N, K)``."""
        h = x.unsqueeze(0).expand(theta.shape[0], *x.shape)
        layers = self._layers(theta)
        for i, (w, bias) in enumerate(layers):
            h = torch.baddbmm(bias, h, w)
            if i < len(layers) - 1:
                h = self.act(h)
        return h

    @property
    def manual_backward(self) -> bool:
        """Whether :meth:`forward_backward` supports the activation (relu, tanh)."""
        return self.act in (torch.relu, torch.tanh)

    def forward_backward(
        self, theta: Tensor, x: Tensor, dout: Callable[[Tensor], tuple[Tensor, Tensor]]
    ) -> tuple[Tensor, Tensor]:
        """Value and gradient without autograd (hand-written backward pass, about 2x faster).

        ``dout(out)`` maps the outputs ``(C, N, K)`` to ``(value (C,), d value / d out (C, N, K))``;
        returns ``value`` and its gradient ``(C, n_params)`` with respect to ``theta[:, :n_params]``.
        """
        c = theta.shape[0]
        layers = self._layers(theta)
        hs = [x.unsqueeze(0).expand(c, *x.shape)]
        for i, (w, bias) in enumerate(layers):
            a = torch.baddbmm(bias, hs[-1], w)
            hs.append(self.act(a) if i < len(layers) - 1 else a)
        value, delta = dout(hs[-1])
        grads: list[Tensor] = []
        for i in range(len(layers) - 1, -1, -1):
            w, _ = layers[i]
            grads.append(delta.sum(1))  # bias (C, fan_out)
            grads.append(torch.bmm(hs[i].transpose(1, 2), delta).reshape(c, -1))  # weight (C, fan_in * fan_out)
            if i > 0:
                delta = torch.bmm(delta, w.transpose(1, 2))
                h = hs[i]
                delta = delta * (h > 0) if self.act is torch.relu else delta * (1 - h * h)
        return value, torch.cat(grads[::-1], 1)


class HMCMethod(Method):
    """Full-batch HMC on a small MLP; the prediction has S = ``num_chains * num_samples / thin``
    draws (at most ``max_predict``, evenly thinned).

    Options: ``num_chains`` (4), ``num_warmup`` (500), ``num_samples`` (500), ``thin`` (1),
    ``n_leapfrog`` (128, jittered in [64, 128]; on toy-gap 64 gave R-hat 1.06 and ESS 65, 128
    gave R-hat 1.005 and ESS 220), ``target_accept`` (0.8), ``prior_std`` (None: 1.0 for
    regression, 3.0 for classification), ``noise`` (``homoscedastic``: tau sampled under its Gamma prior, or ``fixed``), ``noise_std`` (fixed noise,
    standardised units), ``gamma_shape`` (1.0),
    ``gamma_rate`` (0.01), ``init`` (``map`` or ``prior``), ``init_steps`` (300 Adam steps),
    ``activation`` (relu), ``max_params`` (20,000: larger networks raise VBayesError),
    ``max_predict`` (1000). ``epochs`` is ignored (HMC counts iterations, not epochs).
    """

    name: ClassVar[str] = "hmc"
    defaults: ClassVar[dict[str, Any]] = {
        "num_chains": 4,
        "num_warmup": 500,
        "num_samples": 500,
        "thin": 1,
        "n_leapfrog": 128,
        "target_accept": 0.8,
        "prior_std": None,
        "noise": "homoscedastic",
        "noise_std": None,
        "gamma_shape": 1.0,
        "gamma_rate": 0.01,
        "init": "map",
        "init_steps": 300,
        "activation": "relu",
        "max_params": 20000,
        "max_predict": 1000,
        "n_diag_points": 50,
    }

    # -- model -------------------------------------------------------------------------------
    def _build(self, d: int) -> None:
        opt = self.options
        k = self.n_classes if self.task == "classification" else 1
        self.net = BatchedMLP((d, *self.hidden, k), opt["activation"])
        if self.net.n_params > int(opt["max_params"]):
            raise VBayesError(
                f"hmc: the network has {self.net.n_params} parameters, more than max_params={opt['max_params']}; "
                "HMC is for small networks (use fewer hidden units or smaller inputs)"
            )
        self.learn_noise = self.task == "regression" and opt["noise"] in ("homoscedastic", "gamma")
        if self.task == "regression" and not self.learn_noise:
            if opt["noise_std"] is None or not float(opt["noise_std"]) > 0:
                raise VBayesError("hmc: noise='fixed' needs noise_std > 0")
        self.n_params = self.net.n_params + (1 if self.learn_noise else 0)
        self.prior_sd = self.net.prior_std(self.prior_std())
        self.info["prior_std"] = self.prior_std()

    def log_prob(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Unnormalised log posterior ``(C,)`` of ``theta`` ``(C, P)`` given all the data."""
        w = theta[:, : self.net.n_params]
        lp = -0.5 * ((w / self.prior_sd) ** 2).sum(1)
        out = self.net(theta, x)  # (C, N, K)
        if self.task == "classification":
            return lp + torch.log_softmax(out, -1).gather(2, y.view(1, -1, 1).expand(out.shape[0], -1, 1)).sum((1, 2))
        f = out[..., 0]
        if self.learn_noise:
            s = theta[:, -1]  # log precision
            a, b = float(self.options["gamma_shape"]), float(self.options["gamma_rate"])
            lp = lp + a * s - b * s.exp()
        else:
            s = torch.full_like(theta[:, 0], -2.0 * math.log(float(self.options["noise_std"])))
        n = y.shape[0]
        return lp + 0.5 * n * s - 0.5 * s.exp() * ((y - f) ** 2).sum(1)

    def value_and_grad(self, theta: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`log_prob` ``(C,)`` and its gradient ``(C, P)`` by the hand-written backward pass."""
        net_p = self.net.n_params
        w = theta[:, :net_p]
        var = self.prior_sd**2
        prior_lp = -0.5 * (w * w / var).sum(1)
        extra: dict[str, Tensor] = {}
        n = y.shape[0]
        if self.task == "classification":
            onehot = torch.nn.functional.one_hot(y, self.n_classes).to(theta.dtype)

            def dout(out: Tensor) -> tuple[Tensor, Tensor]:
                logp = torch.log_softmax(out, -1)
                return (logp * onehot).sum((1, 2)), onehot - logp.exp()

        else:
            if self.learn_noise:
                s = theta[:, -1]
            else:
                s = torch.full_like(theta[:, 0], -2.0 * math.log(float(self.options["noise_std"])))
            tau = s.exp()

            def dout(out: Tensor) -> tuple[Tensor, Tensor]:
                r = y - out[..., 0]  # (C, N)
                sse = (r * r).sum(1)
                extra["sse"] = sse
                return 0.5 * n * s - 0.5 * tau * sse, (tau[:, None] * r).unsqueeze(-1)

        value, grad = self.net.forward_backward(theta, x, dout)
        value = value + prior_lp
        grad = grad - w / var
        if self.learn_noise:
            a, b = float(self.options["gamma_shape"]), float(self.options["gamma_rate"])
            value = value + a * s - b * tau
            g_s = a + 0.5 * n - tau * (b + 0.5 * extra["sse"])
            grad = torch.cat([grad, g_s[:, None]], 1)
        return value, grad

    def _init(self, x: Tensor, y: Tensor, c: int) -> Tensor:
        scale = torch.cat([self.prior_sd, torch.ones(self.n_params - self.net.n_params)])
        theta = torch.randn(c, self.n_params) * scale
        if self.learn_noise:
            theta[:, -1] = 0.0  # tau = 1: noise std equal to the (standardised) data std
        if self.options["init"] == "prior":
            return theta
        if self.options["init"] != "map":
            raise VBayesError(f"hmc: unknown init {self.options['init']!r}; choose map or prior")
        theta.requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=1e-2)
        n = x.shape[0]
        for _ in range(int(self.options["init_steps"])):
            loss = -self.log_prob(theta, x, y).sum() / n
            opt.zero_grad()
            loss.backward()
            opt.step()
        theta = theta.detach()
        if not torch.isfinite(theta).all():
            theta = torch.where(torch.isfinite(theta), theta, torch.zeros_like(theta))
        return theta

    # -- Method API --------------------------------------------------------------------------
    def _check_noise_options(self) -> None:
        noise = self.options["noise"]
        if self.task == "regression" and noise not in ("homoscedastic", "gamma", "fixed"):
            raise VBayesError(f"hmc: unknown noise {noise!r}; choose homoscedastic (the noise precision is "
                              "sampled under its Gamma prior) or fixed")
        if self.task == "regression" and noise == "fixed":
            check_noise("fixed", self.options["noise_std"], self.name)

    def _fit(self, x: Tensor, y: Tensor) -> None:
        opt = self.options
        self._build(x.shape[1])
        c = int(opt["num_chains"])
        if c < 1:
            raise VBayesError("hmc: num_chains must be >= 1")
        init = self._init(x, y, c)
        res = sample_hmc(
            lambda th: self.log_prob(th, x, y),
            init,
            value_and_grad=(lambda th: self.value_and_grad(th, x, y)) if self.net.manual_backward else None,
            num_warmup=int(opt["num_warmup"]),
            num_samples=int(opt["num_samples"]),
            n_leapfrog=int(opt["n_leapfrog"]),
            thin=int(opt["thin"]),
            target_accept=float(opt["target_accept"]),
        )
        self.samples = res.samples  # (C, T, P)
        total_s = res.warmup_seconds + res.sample_seconds
        self.info.update(
            num_chains=c,
            num_draws=int(res.samples.shape[1]),
            n_samples=int(res.samples.shape[0] * res.samples.shape[1]),
            n_params=self.n_params,
            divergences=int(res.divergent.sum()),
            warmup_divergences=res.warmup_divergences,
            step_size=float(res.step_size.mean()),
            accept_rate=float(res.accept_prob.mean()),
            target_accept=float(opt["target_accept"]),
            warmup_accept_rate=float(res.warmup_accept_prob.mean()) if res.warmup_accept_prob.numel() else math.nan,
            grad_evals=res.grad_evals,
            warmup_seconds=res.warmup_seconds,
            sample_seconds=res.sample_seconds,
        )
        if not torch.isfinite(self.samples).all():
            self.info["error"] = "hmc: non-finite parameters in the chains"
            return
        self.info.update(self._diagnostics(x, y))
        self.info["ess_per_second"] = self.info["ess_min"] / max(total_s, 1e-9)

    def _diagnostics(self, x: Tensor, y: Tensor) -> dict[str, float]:
        c, t, p = self.samples.shape
        idx = torch.linspace(0, x.shape[0] - 1, min(x.shape[0], int(self.options["n_diag_points"]))).round().long()
        with torch.no_grad():
            flat = self.samples.reshape(c * t, p)
            if self.task == "classification":
                out = torch.log_softmax(self.net(flat, x[idx]), -1)
                q = out.gather(2, y[idx].view(1, -1, 1).expand(c * t, -1, 1))[..., 0]  # log p(y_i | x_i)
            else:
                q = self.net(flat, x[idx])[..., 0]
                if self.learn_noise:
                    q = torch.cat([q, flat[:, -1:]], 1)
        q = q.reshape(c, t, -1).double().numpy()
        out: dict[str, float] = {}
        if c >= 2 and t >= 4:
            out.update(summarize(q))
            params = summarize(self.samples.double().numpy())
            out["rhat_max_params"] = params["rhat_max"]
            out["ess_min_params"] = params["ess_min"]
        else:
            out.update(rhat_max=math.nan, ess_min=math.nan)
        return out

    def _predict(self, x: Tensor) -> Prediction:
        """``S = C * T'`` draws, chain by chain: each chain thinned evenly to ``T' = min(T,
        max_predict // C)`` draws, so that ``info["predict_chains"] = C`` lets a caller split the
        rows back into chains (``mu.reshape(C, T', M)``, e.g. for R-hat on the predictions)."""
        c, t, p = self.samples.shape
        keep = max(1, min(t, int(self.options["max_predict"]) // c))
        flat = self.samples[:, torch.linspace(0, t - 1, keep).round().long()].reshape(c * keep, p)
        outs = torch.cat([self.net(chunk, x) for chunk in flat.split(256)])  # (S, M, K)
        info = {**self.info, "predict_chains": c}
        if self.task == "classification":
            return ClassificationPrediction(probs=torch.softmax(outs, -1), info=info)
        mu = outs[..., 0]
        if self.learn_noise:
            sigma = torch.exp(-0.5 * flat[:, -1:]).expand_as(mu)
        else:
            sigma = torch.full_like(mu, float(self.options["noise_std"]))
        return RegressionPrediction(mu=mu, sigma=sigma.contiguous(), info=info)
