"""One interface over the three auto-encoders, and the measurements taken through it.

An :class:`AutoencoderView` says, for a trained AE, VAE or Bayesian AE, how to get a point code
of an input, a *sampled* code (the model's own randomness: none for the AE, z ~ q(z|x) for the
VAE, a weight sample for the Bayesian AE), how to decode a code to a mean image, and the
reconstruction log-likelihood. :func:`measure_latent_space` then takes the same measurements of
every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from vbayes.studies.autoencoders.latent import blend_smoothness, interpolate_codes, knn_accuracy, latent_moments, silhouette

CodeFn = Callable[[Tensor], Tensor]


@dataclass
class AutoencoderView:
    """How to use one trained auto-encoder for the comparison.

    Attributes:
        key: ``"ae"``, ``"vae"`` or ``"bae"`` (the key in ``metrics.json``).
        title: display name, e.g. ``"Bayesian AE"``.
        point_code: images ``(n, C, H, W)`` -> deterministic codes ``(n, D)`` (the AE's code,
            the VAE's posterior mean, the Bayesian AE's code under the posterior-mean weights).
        sample_code: images -> codes ``(n, D)`` with fresh model randomness each call, or
            ``None`` for a deterministic model.
        decode_mean: codes ``(n, D)`` -> mean images ``(n, C, H, W)`` in [0, 1].
        log_likelihood: ``(codes (n, D), images (n, C, H, W))`` -> ``(n,)`` log p(x | code) in
            nats (the decoder output evaluated under the model's pixel likelihood).
        has_prior: the code space has a prior to draw from (the VAE's N(0, I)).
        model: the underlying module (put in eval mode by the view's user).
    """

    key: str
    title: str
    point_code: CodeFn
    sample_code: CodeFn | None
    decode_mean: CodeFn
    log_likelihood: Callable[[Tensor, Tensor], Tensor]
    has_prior: bool
    model: nn.Module | None = None

    @property
    def stochastic(self) -> bool:
        """Whether the model has its own randomness (a distribution over reconstructions)."""
        return self.sample_code is not None


def view_of(key: str, model: nn.Module) -> AutoencoderView:
    """An :class:`AutoencoderView` of a :class:`~vbayes.models.AE` (``"ae"``),
    :class:`~vbayes.models.VAE` (``"vae"``) or :class:`~vbayes.models.bae.BayesianAE` (``"bae"``)."""
    lik: Any = model.likelihood  # type: ignore[attr-defined]
    if key == "ae":
        return AutoencoderView(
            "ae", "AE", model.encode, None, model.decode_mean,  # type: ignore[attr-defined,arg-type]
            lambda z, x: lik.log_prob(model.decode(z), x), False, model,  # type: ignore[attr-defined,operator]
        )
    if key == "vae":

        def vae_point(x: Tensor) -> Tensor:
            return model.encode(x)[0]  # type: ignore[attr-defined,operator]

        def vae_sample(x: Tensor) -> Tensor:
            mu, logvar = model.encode(x)  # type: ignore[attr-defined,operator]
            return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

        return AutoencoderView(
            "vae", "VAE", vae_point, vae_sample, model.decode_mean,  # type: ignore[attr-defined,arg-type]
            lambda z, x: lik.log_prob(model.decode(z), x), True, model,  # type: ignore[attr-defined,operator]
        )
    if key == "bae":
        return AutoencoderView(
            "bae", "Bayesian AE", model.mean_codes, model.encode, model.decode_mean,  # type: ignore[attr-defined,arg-type]
            lambda z, x: lik.log_prob(model.decode(z), x), False, model,  # type: ignore[attr-defined,operator]
        )
    raise ValueError(f"view_of: unknown key {key!r}; choose ae, vae or bae")


@torch.no_grad()
def encode_all(fn: CodeFn, x: Tensor, chunk: int = 2048) -> Tensor:
    """Apply an encoder function to ``(N, C, H, W)`` in chunks -> ``(N, D)``."""
    return torch.cat([fn(x[i : i + chunk]) for i in range(0, len(x), chunk)])


@torch.no_grad()
def expected_recon_nll(view: AutoencoderView, x: Tensor, n_samples: int = 10, chunk: int = 2048) -> float:
    """Mean over inputs of E[-log p(x | code)] under the model's own randomness (nats per example).

    The AE decodes its one code; the VAE averages over z ~ q(z|x); the Bayesian AE over weight
    samples; ``n_samples`` draws each (1 for the AE). ``x`` ``(N, C, H, W)`` is both input and
    target (binarised for a Bernoulli likelihood).
    """
    draws = n_samples if view.stochastic else 1
    fn = view.sample_code if view.sample_code is not None else view.point_code
    total = 0.0
    for _ in range(draws):
        for i in range(0, len(x), chunk):
            xc = x[i : i + chunk]
            total += float(-view.log_likelihood(fn(xc), xc).double().sum())
    return total / (draws * len(x))


def blend_pairs(y: Tensor, pairs: list[tuple[int, int]], confidence: Tensor | None = None) -> list[tuple[int, int]]:
    """For each class pair ``(a, b)`` the indices of one example labelled a and one labelled b.

    With ``confidence`` ``(N,)`` (e.g. a classifier's probability of each example's own label)
    the most confident example of each class is taken, a clear digit rather than whichever comes
    first; without it, the first. Pairs whose classes are absent from ``y`` are skipped.
    """
    score = torch.zeros(len(y)) if confidence is None else confidence.detach().cpu().double()
    order = torch.arange(len(y), dtype=torch.float64)
    key = score - 1e-9 * order  # ties (and no confidence at all) go to the earliest example

    def pick(cls: int) -> int | None:
        members = (y == cls).nonzero().flatten()
        return int(members[key[members].argmax()]) if len(members) else None

    out = []
    for a, b in pairs:
        ia, ib = pick(a), pick(b)
        if ia is not None and ib is not None:
            out.append((ia, ib))
    return out


@torch.no_grad()
def decode_blend(view: AutoencoderView, x_a: Tensor, x_b: Tensor, steps: int = 12) -> Tensor:
    """Decoded frames ``(steps, C, H, W)`` on the line between the point codes of two images ``(C, H, W)``."""
    codes = view.point_code(torch.stack([x_a, x_b]))
    return view.decode_mean(interpolate_codes(codes[0], codes[1], steps))


@torch.no_grad()
def measure_latent_space(
    view: AutoencoderView,
    x_fit: Tensor,
    y_fit: Tensor,
    x_eval: Tensor,
    y_eval: Tensor,
    x_eval_target: Tensor,
    pairs: list[tuple[int, int]],
    steps: int = 12,
    k: int = 10,
    nll_samples: int = 10,
) -> dict[str, Any]:
    """The comparison's measurements of one model.

    Args:
        view: the model.
        x_fit, y_fit: reference images and labels for the kNN vote (the training split).
        x_eval, y_eval: evaluated images and labels (the test split).
        x_eval_target: the reconstruction targets of ``x_eval`` (its fixed binarisation for a
            Bernoulli likelihood, ``x_eval`` itself for a Gaussian one).
        pairs: ``(i, j)`` index pairs into ``x_eval`` to blend between.
        steps: frames per blend; k: neighbours of the kNN vote; nll_samples: draws of the
            model's randomness for the reconstruction NLL.

    Returns:
        ``knn_accuracy`` (fraction), ``silhouette`` ([-1, 1]), ``latent_mean`` and
        ``latent_std`` (per dimension, of the eval point codes), ``blend_mean_change`` and
        ``blend_max_change`` (mean absolute pixel change per interpolation step, pixel units in
        [0, 1]) and ``test_recon_nll`` (nats per example).
    """
    z_fit = encode_all(view.point_code, x_fit)
    z_eval = encode_all(view.point_code, x_eval)
    mean, std = latent_moments(z_eval)
    blends = [decode_blend(view, x_eval[i], x_eval[j], steps) for i, j in pairs]
    smooth = blend_smoothness(blends) if blends else {"mean_change": float("nan"), "max_change": float("nan")}
    return {
        "knn_accuracy": knn_accuracy(z_fit, y_fit, z_eval, y_eval, k=min(k, len(z_fit))),
        "silhouette": silhouette(z_eval, y_eval),
        "latent_mean": mean,
        "latent_std": std,
        "blend_mean_change": smooth["mean_change"],
        "blend_max_change": smooth["max_change"],
        "test_recon_nll": expected_recon_nll(view, x_eval_target if x_eval_target is not None else x_eval, nll_samples),
    }
