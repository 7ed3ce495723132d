"""The Bayesian auto-encoder: a distribution over the encoder's weights instead of over the code.

A VAE puts the randomness in the hidden units, q(z|x) = N(mu(x), sigma(x)). The Bayesian AE
keeps the code a deterministic function of the input and the weights, z = f_w(x), and puts a
mean-field Gaussian posterior q(w) on the encoder's weights (Flipout layers by default; any
estimator of :mod:`vbayes.layers`). The decoder is deterministic (optionally Bayesian too).
Training minimises the per-example negative ELBO of the weights,

    loss = E_q(w)[-log p(x | decoder(f_w(x)))] + KL(q(w) || p(w)) / N,

one weight sample per mini-batch example (Flipout / LRT) or per mini-batch (Reparam). The
output distribution of a reconstruction comes from S weight samples: S codes and S decoded
images per input, summarised by :func:`sample_reconstructions` in bounded memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from vbayes.layers.convert import to_bayesian
from vbayes.losses import elbo_loss
from vbayes.layers.base import kl_divergence
from vbayes.models.base import ImageAutoencoder
from vbayes.layers.priors import Normal
from vbayes.layers.sampling import sampling_mode

DEFAULT_CHUNK_ROWS = 4096
BAE_POSTERIOR_STD_INIT = 0.05
"""Initial posterior standard deviation of the Bayesian AE's weights (``posterior_std_init``).

Fifty times the layers' own default (:data:`vbayes.layers.DEFAULT_POSTERIOR_STD`, 1e-3): an
encoder trained for a few epochs must reach a useful posterior width, and Adam moves
log sigma only by about the learning rate per step, so it starts near the width the ELBO
settles at instead (see :data:`DEFAULT_PRIOR_SCALE` for the measurement)."""
DEFAULT_PRIOR_SCALE = 0.1
"""Standard deviation of the default N(0, s^2) weight prior.

Measured on mnist5k (MLP 784-400-2, Flipout, 4 epochs, batch 100, N = 3,500): with the N(0, 1)
prior the KL term is ~218 nats per example and the test ELBO -383; with N(0, 0.1^2), a scale
close to that of the initial weights, the KL is ~25 nats and the ELBO -191, for the same
reconstruction NLL (165.8 vs 165.7 nats). Both posteriors start at sigma = 0.05; from the
layers' 1e-3 the KL stays near 570 nats per example for tens of epochs, as Adam moves
log sigma only by about the learning rate per step."""


@dataclass
class ReconstructionSamples:
    """Summary of S sampled reconstructions of N inputs.

    Attributes:
        mean: ``(N, C, H, W)`` per-pixel mean over the S decoded images (pixel means in [0, 1]
            for a Bernoulli likelihood).
        std: ``(N, C, H, W)`` per-pixel standard deviation over the S decoded images (ddof 0).
        codes: ``(S, K, D)`` the sampled latent codes of the first K inputs (K = N unless
            ``keep_codes`` limited it).
        n_samples: S.
    """

    mean: Tensor
    std: Tensor
    codes: Tensor
    n_samples: int


def sample_reconstructions(
    sample_code: Callable[[Tensor], Tensor],
    decode: Callable[[Tensor], Tensor],
    x: Tensor,
    n_samples: int = 100,
    chunk: int = DEFAULT_CHUNK_ROWS,
    on_sample: Callable[[Tensor, Tensor, Tensor], None] | None = None,
    keep_codes: int | None = None,
) -> ReconstructionSamples:
    """S stochastic reconstructions of each input, summarised per pixel in bounded memory.

    Each of the S rounds draws fresh randomness for every input (a new weight sample for a
    Bayesian AE, a new z ~ q(z|x) for a VAE), so the S reconstructions of one input are
    independent whatever the layer estimator (a shared-sample Reparam layer included).

    Args:
        sample_code: ``(n, C, H, W)`` inputs -> ``(n, D)`` sampled codes, fresh randomness per call.
        decode: ``(n, D)`` codes -> ``(n, C, H, W)`` decoded images (e.g. Bernoulli means).
        x: ``(N, C, H, W)`` inputs.
        n_samples: S >= 1.
        chunk: at most this many inputs per forward pass; memory beyond the two ``(N, C, H, W)``
            float64 accumulators and the kept codes is O(chunk * C * H * W), whatever S.
        on_sample: optional ``on_sample(z (n, D), recon (n, C, H, W), index (n,))`` called for
            every chunk of every round (e.g. to classify each reconstruction).
        keep_codes: keep the sampled codes of only the first this many inputs (``None``: all),
            so that memory does not grow as S * N for a very large S.

    Returns:
        A :class:`ReconstructionSamples` (float32, on ``x``'s device).
    """
    if n_samples < 1:
        raise ValueError(f"sample_reconstructions: n_samples must be >= 1, got {n_samples}")
    if chunk < 1:
        raise ValueError(f"sample_reconstructions: chunk must be >= 1, got {chunk}")
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"sample_reconstructions: x must be a non-empty (N, ...) batch, got {tuple(x.shape)}")
    n = len(x)
    keep = n if keep_codes is None else max(0, min(int(keep_codes), n))
    total = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
    total_sq = torch.zeros_like(total)
    codes: list[Tensor] = []
    with torch.no_grad():
        for _ in range(n_samples):
            row: list[Tensor] = []
            for start in range(0, n, chunk):
                xc = x[start : start + chunk]
                z = sample_code(xc)
                recon = decode(z)
                if recon.shape != xc.shape:
                    raise ValueError(f"sample_reconstructions: decode returned {tuple(recon.shape)}, expected {tuple(xc.shape)}")
                r64 = recon.double()
                total[start : start + len(xc)] += r64
                total_sq[start : start + len(xc)] += r64 * r64
                if start < keep:
                    row.append(z.detach()[: keep - start])
                if on_sample is not None:
                    on_sample(z, recon, torch.arange(start, start + len(xc), device=x.device))
            codes.append(torch.cat(row) if row else z.new_zeros((0, *z.shape[1:])))
    mean = total / n_samples
    var = (total_sq / n_samples - mean * mean).clamp_min(0.0)
    return ReconstructionSamples(mean.float(), var.sqrt().float(), torch.stack(codes).float(), n_samples)


class BayesianAE(ImageAutoencoder):
    """Auto-encoder with a variational posterior over the encoder's weights.

    Args:
        arch, image_shape, latent, hidden, likelihood, gaussian_std: as for
            :class:`~vbayes.models.base.ImageAutoencoder` (the same networks as the
            :class:`~vbayes.models.VAE` and :class:`~vbayes.models.AE` of the same options).
        estimator: ``"flipout"`` (default), ``"reparam"`` or ``"lrt"``: how the Bayesian layers
            sample (see :func:`vbayes.to_bayesian`).
        bayesian_decoder: also put a weight posterior on the decoder (a variant).
        prior: weight prior of the Bayesian layers (``None``: N(0, ``DEFAULT_PRIOR_SCALE``^2)).
        posterior_std_init: initial posterior standard deviation of every Bayesian weight.
            Adam moves log sigma by about ``lr`` per step, so a start far below the scale the
            ELBO settles at is not reached in a short run; see ``BAE_POSTERIOR_STD_INIT``.

    Shapes: ``forward(x)`` ``(B, C, H, W)`` -> decoder output ``(B, C, H, W)`` (logits or means)
    under a fresh weight sample (per example for Flipout / LRT, per call for Reparam).
    """

    def __init__(
        self,
        arch: str = "mlp",
        image_shape: Sequence[int] = (1, 28, 28),
        latent: int = 2,
        hidden: int | Sequence[int] = 400,
        estimator: str = "flipout",
        bayesian_decoder: bool = False,
        prior: Any = None,
        likelihood: str = "bernoulli",
        gaussian_std: float | None = None,
        posterior_std_init: float = BAE_POSTERIOR_STD_INIT,
    ) -> None:
        super().__init__(arch, image_shape, latent, hidden, likelihood, gaussian_std)
        if not (0 < posterior_std_init < math.inf):
            raise ValueError(f"BayesianAE: posterior_std_init must be a finite number > 0, got {posterior_std_init}")
        body, features, decoder = self.build_networks(arch, hidden)
        if prior is None:
            prior = Normal(0.0, DEFAULT_PRIOR_SCALE)
        kwargs: dict[str, Any] = {"estimator": estimator, "prior": prior, "posterior_std_init": posterior_std_init}
        self.encoder = to_bayesian(nn.Sequential(body, nn.Linear(features, latent)), **kwargs)
        self.decoder = to_bayesian(decoder, **kwargs) if bayesian_decoder else decoder
        self.hparams.update(estimator=estimator, bayesian_decoder=bool(bayesian_decoder), prior=repr(prior),
                            posterior_std_init=float(posterior_std_init))  # fmt: skip

    def encode(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> codes ``(B, D)`` under a fresh weight sample."""
        self.check_images(x)
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> decoder output ``(B, C, H, W)`` under a fresh weight sample."""
        return self.decode(self.encode(x))

    def point_output(self, x: Tensor) -> Tensor:
        """The decoder output under the posterior-mean weights (nothing sampled)."""
        with sampling_mode(self, "mean"):
            return self(x)

    def sampled_reconstruction_nll(self, x: Tensor) -> Tensor:
        """``-log p(x | decoder(f_w(x)))`` under one fresh weight sample w ~ q(w), ``(B,)`` nats per
        example: the one-sample estimate of the ELBO's reconstruction term (:meth:`loss`), whose
        average over weight samples is :meth:`expected_nll`. Not :meth:`reconstruction_nll`, which
        decodes under the posterior-mean weights."""
        return self.likelihood.nll(self(x), x)

    def kl_per_example(self, dataset_size: int) -> Tensor:
        """KL(q(w) || p(w)) / N: the weights' share of the negative ELBO per example (nats)."""
        if dataset_size < 1:
            raise ValueError(f"BayesianAE: dataset_size must be >= 1, got {dataset_size}")
        return kl_divergence(self) / dataset_size

    def loss(self, x: Tensor, dataset_size: int) -> Tensor:
        """Negative ELBO per example: mean :meth:`sampled_reconstruction_nll` + KL(q(w) || p(w)) / N.

        ``x`` ``(B, C, H, W)`` is both the input and the reconstruction target (binarise it
        first for a Bernoulli likelihood); ``dataset_size`` is N, the number of training
        examples, so the KL is paid once per pass over the data. Returns a scalar (nats).
        """
        return elbo_loss(self.sampled_reconstruction_nll(x).mean(), self, dataset_size)

    @torch.no_grad()
    def expected_nll(self, x: Tensor, n_samples: int = 10, chunk: int = DEFAULT_CHUNK_ROWS) -> Tensor:
        """E_q(w)[-log p(x | w)] per example by ``n_samples`` weight samples, ``(N,)`` nats."""
        if n_samples < 1:
            raise ValueError(f"BayesianAE: n_samples must be >= 1, got {n_samples}")
        total = torch.zeros(len(x), dtype=torch.float64, device=x.device)
        for _ in range(n_samples):
            for i in range(0, len(x), chunk):
                total[i : i + chunk] += self.sampled_reconstruction_nll(x[i : i + chunk]).double()
        return (total / n_samples).float()

    def sample_reconstructions(self, x: Tensor, n_samples: int = 100, **options: Any) -> ReconstructionSamples:
        """S weight samples per input: per-pixel mean / std of the decoded images and the S codes.

        ``x`` ``(N, C, H, W)``; ``options`` (``chunk``, ``on_sample``, ``keep_codes``) and the memory
        bound are those of :func:`sample_reconstructions`. The weights are sampled whatever the
        model's sampling mode.
        """
        with sampling_mode(self, "sample"):
            return sample_reconstructions(self.encode, self.decode_mean, x, n_samples, **options)

    @torch.no_grad()
    def mean_codes(self, x: Tensor, chunk: int = DEFAULT_CHUNK_ROWS) -> Tensor:
        """Images ``(N, C, H, W)`` -> codes ``(N, D)`` under the posterior-mean weights."""
        with sampling_mode(self, "mean"):
            return torch.cat([self.encode(x[i : i + chunk]) for i in range(0, len(x), chunk)])

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Mean images ``(B, C, H, W)`` under the posterior-mean weights (without gradients)."""
        return super().reconstruct(x)
