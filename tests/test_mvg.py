"""``LinearMVG`` and the ``mvg`` method against independent oracles.

* the output moments of one input against the analytic ones (mean x M + b, variance
  (x^2 . U) V + sigma_b^2), the sample mean and variance within their Monte-Carlo error;
* the closed-form KL against ``torch.distributions`` on the vectorised Kronecker form;
* ``gradcheck`` of the sampled forward (fixed noise) in float64;
* the ``mvg`` method on Bayesian linear regression: with one output the matrix-variate
  posterior is mean-field, so it reaches the mean-field optimum.

A broken KL (for example ``log det V`` weighted by ``out`` instead of ``in``) fails the KL test,
and the KL left out of the loss fails the oracle (the variances collapse).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D
from torch import nn

from _blr import assert_mean_field_optimum, blr_problem
from vbayes.layers import LinearMVG, kl_divergence
from vbayes.layers.mvg import mvg_kl
from vbayes.layers.priors import Normal, ScaleMixture
from vbayes.layers.sampling import sampling_mode
from vbayes.losses import elbo_loss
from vbayes.methods import get_method


def _layer(n_in: int = 4, n_out: int = 3, bias: bool = True, prior_scale: float = 0.7, seed: int = 0,
           dtype: torch.dtype = torch.float64) -> LinearMVG:
    torch.manual_seed(seed)
    layer = LinearMVG(n_in, n_out, bias=bias, prior=Normal(0.0, prior_scale), dtype=dtype)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # a posterior far from its initial state, with unequal U and V
        layer.log_u.copy_(torch.randn(n_in, generator=gen, dtype=dtype) - 1.0)
        layer.log_v.copy_(torch.randn(n_out, generator=gen, dtype=dtype) - 0.5)
        layer.weight_mu.copy_(torch.randn(n_out, n_in, generator=gen, dtype=dtype))
        if bias:
            layer.bias_mu.copy_(torch.randn(n_out, generator=gen, dtype=dtype))
            layer.bias_rho.copy_(torch.randn(n_out, generator=gen, dtype=dtype) - 1.0)
    return layer


def test_output_moments_match_the_analytic_ones() -> None:
    layer = _layer()
    layer.generator = torch.Generator().manual_seed(5)
    x = torch.tensor([0.5, -1.0, 2.0, 0.3], dtype=torch.float64)
    n = 20000
    with torch.no_grad():
        out = layer(x.expand(n, -1))  # (n, out): every row an independent draw
        mean = x @ layer.weight_mu.T + layer.bias_mu
        var = (x * x) @ layer.U * layer.V + layer.bias_std**2
        # the weights' marginal variances U_i V_j give the same variance
        torch.testing.assert_close(var, (x * x) @ (layer.weight_std**2).T + layer.bias_std**2)
    sd = var.sqrt()
    # sample mean: se sd / sqrt(n); sample variance: se var sqrt(2 / (n - 1)) (Gaussian output)
    assert ((out.mean(0) - mean).abs() / (sd / math.sqrt(n))).max() < 4
    assert ((out.var(0) / var - 1).abs()).max() < 4 * math.sqrt(2 / (n - 1))
    # the outputs are Gaussian and independent across units
    corr = torch.corrcoef(out.T)
    assert (corr - torch.eye(3, dtype=corr.dtype)).abs().max() < 4 / math.sqrt(n)
    # a Monte-Carlo check of the same moments from sampled weight matrices W ~ MN(M, U, V)
    gen = torch.Generator().manual_seed(6)
    w = layer.weight_mu.detach().T + torch.randn(n, 4, 3, generator=gen, dtype=torch.float64) * (
        layer.U.detach()[:, None].sqrt() * layer.V.detach()[None, :].sqrt())
    b = layer.bias_mu.detach() + layer.bias_std.detach() * torch.randn(n, 3, generator=gen, dtype=torch.float64)
    mc = torch.einsum("i,nij->nj", x, w) + b
    assert ((mc.mean(0) - mean).abs() / (sd / math.sqrt(n))).max() < 4
    assert ((mc.var(0) / var - 1).abs()).max() < 4 * math.sqrt(2 / (n - 1))
    # mean mode is the posterior mean, and the shapes follow nn.Linear's
    with sampling_mode(layer, "mean"), torch.no_grad():
        torch.testing.assert_close(layer(x), mean)
    assert layer(torch.zeros(2, 5, 4, dtype=torch.float64)).shape == (2, 5, 3)


@pytest.mark.parametrize("bias", [True, False])
def test_kl_matches_torch_distributions_on_the_kronecker_form(bias: bool) -> None:
    n_in, n_out, s = 4, 3, 0.7
    layer = _layer(n_in, n_out, bias=bias, prior_scale=s)
    m = layer.weight_mu.detach().T  # (in, out)
    u, v = layer.U.detach(), layer.V.detach()
    # vec stacks the columns of W: vec(W)[j * in + i] = W_ij, with covariance V (x) U
    vec_m = m.T.reshape(-1)
    cov = torch.kron(torch.diag(v), torch.diag(u))
    torch.testing.assert_close(torch.diagonal(cov), torch.kron(v, u))
    q = D.MultivariateNormal(vec_m, covariance_matrix=cov)
    p = D.MultivariateNormal(torch.zeros(n_in * n_out, dtype=torch.float64),
                             covariance_matrix=s**2 * torch.eye(n_in * n_out, dtype=torch.float64))
    expected = D.kl_divergence(q, p)
    if bias:
        expected = expected + D.kl_divergence(D.Normal(layer.bias_mu.detach(), layer.bias_std.detach()),
                                              D.Normal(torch.tensor(0.0, dtype=torch.float64), s)).sum()
    got = layer.kl_divergence()
    assert got.dtype == torch.float64 and got.requires_grad
    torch.testing.assert_close(got.detach(), expected, rtol=1e-10, atol=1e-10)
    # the whole-model sum sees the layer, inside nn.Sequential
    model = nn.Sequential(layer, nn.Tanh())
    torch.testing.assert_close(kl_divergence(model).detach(), expected, rtol=1e-10, atol=1e-10)


def test_kl_with_a_shifted_prior_mean() -> None:
    layer = _layer(3, 2, bias=False)
    layer.prior = Normal(0.4, 1.3)
    q = D.Normal(layer.weight_mu.detach(), layer.weight_std.detach())
    expected = D.kl_divergence(q, D.Normal(torch.tensor(0.4, dtype=torch.float64), 1.3)).sum()
    torch.testing.assert_close(layer.kl_divergence().detach(), expected, rtol=1e-10, atol=1e-10)


def test_sampled_forward_passes_gradcheck() -> None:
    layer = _layer(3, 2)
    names = [name for name, _ in layer.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in layer.parameters())
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)

    def forward(x: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        layer.generator = torch.Generator().manual_seed(11)  # the same noise at every call
        return torch.func.functional_call(layer, dict(zip(names, values)), (x,))

    assert layer.sampling == "sample"
    assert torch.autograd.gradcheck(forward, (x, *params))
    # the closed-form KL's gradient too
    m, log_u, log_v = (layer.weight_mu.detach().T.clone().requires_grad_(True), params[1], params[2])
    assert torch.autograd.gradcheck(lambda a, b, c: mvg_kl(a, b, c, 0.3, 0.7), (m, log_u, log_v))
    # the noise is drawn: two calls without a fixed generator differ
    layer.generator = None
    with torch.no_grad():
        assert not torch.equal(layer(x), layer(x))


def test_elbo_loss_sees_the_layer() -> None:
    layer = _layer()
    model = nn.Sequential(layer, nn.ReLU(), LinearMVG(3, 1, dtype=torch.float64))
    nll = torch.zeros(4, dtype=torch.float64)
    expected = (layer.kl_divergence() + model[2].kl_divergence()) / 10
    torch.testing.assert_close(elbo_loss(nll, model, 10), expected)


def test_prior_must_be_normal() -> None:
    with pytest.raises(TypeError, match="priors.Normal"):
        LinearMVG(3, 2, prior=ScaleMixture())
    with pytest.raises(ValueError, match="posterior_std_init"):
        LinearMVG(3, 2, posterior_std_init=0.0)
    layer = LinearMVG(3, 2, posterior_std_init=0.01)
    torch.testing.assert_close(layer.weight_std, torch.full((2, 3), 0.01))
    torch.testing.assert_close(layer.bias_std, torch.full((2,), 0.01))


PROBLEM = blr_problem()


def test_mvg_reaches_the_mean_field_optimum() -> None:
    p = PROBLEM
    method = get_method("mvg", seed=0, hidden=(), noise="fixed", noise_std=p.noise, prior_std=p.prior_std,
                        steps=3000).fit(p.x, p.y)
    layer = method.model[0]
    assert isinstance(layer, LinearMVG)
    assert_mean_field_optimum(method, p)
