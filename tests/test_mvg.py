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
from vbayes.errors import VBayesError
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


# ----------------------------------------------------------------- pseudo-data
def _pseudo_layer(p: int = 3, n_in: int = 4, n_out: int = 3, bias: bool = True, seed: int = 0) -> LinearMVG:
    """A float64 layer with ``p`` pseudo-data points far from their initial values (Z U Z^T well
    above the 1e-6 jitter, T unrelated to Z M)."""
    torch.manual_seed(seed)
    layer = LinearMVG(n_in, n_out, bias=bias, prior=Normal(0.0, 0.7), pseudo_data=p, dtype=torch.float64)
    ref = _layer(n_in, n_out, bias=bias, seed=seed)
    gen = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for name, value in ref.named_parameters():
            getattr(layer, name).copy_(value)
        layer.pseudo_inputs.copy_(torch.randn(p, n_in, generator=gen, dtype=torch.float64))
        layer.pseudo_outputs.copy_(torch.randn(p, n_out, generator=gen, dtype=torch.float64))
    return layer


def _dense_conditional(layer: LinearMVG, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The oracle: mean ``(B, out)`` and covariance ``(B, out, out)`` of ``x_b W + bias`` given
    ``T = Z W + e`` by the Gaussian conditioning formula on vec(W) ~ N(vec M, V (x) U), dense float64.

    The layer's 1e-6 jitter on ``Z U Z^T`` is, for column j (whose ``T_:j`` has covariance
    ``V_j Z U Z^T``), observation noise ``e_:j ~ N(0, 1e-6 V_j I)``; the oracle conditions on that.
    """
    m = layer.weight_mu.detach().T  # (in, out)
    u, v = layer.U.detach(), layer.V.detach()
    z, t = layer.pseudo_inputs.detach(), layer.pseudo_outputs.detach()
    n_in, n_out, p = m.shape[0], m.shape[1], z.shape[0]
    cov_w = torch.kron(torch.diag(v), torch.diag(u))  # vec stacks columns: vec(W)[j * in + i] = W_ij
    vec_m, vec_t = m.T.reshape(-1), t.T.reshape(-1)
    a_t = torch.kron(torch.eye(n_out, dtype=m.dtype), z)  # vec(Z W) = (I (x) Z) vec(W)
    noise = torch.kron(torch.diag(v), 1e-6 * torch.eye(p, dtype=m.dtype))
    s_tt = a_t @ cov_w @ a_t.T + noise
    means, covs = [], []
    for row in x:
        a_y = torch.kron(torch.eye(n_out, dtype=m.dtype), row[None, :])  # (out, in out): vec(x W)
        s_yt = a_y @ cov_w @ a_t.T
        gain = s_yt @ torch.linalg.inv(s_tt)  # plain dense algebra: the oracle may invert
        means.append(a_y @ vec_m + gain @ (vec_t - a_t @ vec_m))
        covs.append(a_y @ cov_w @ a_y.T - gain @ s_yt.T)
    mean, cov = torch.stack(means), torch.stack(covs)
    if layer.bias_mu is not None:
        mean = mean + layer.bias_mu.detach()
        cov = cov + torch.diag(layer.bias_std.detach() ** 2)
    return mean, cov


@pytest.mark.parametrize("bias", [True, False])
def test_pseudo_data_output_moments_match_the_dense_gaussian_conditional(bias: bool) -> None:
    layer = _pseudo_layer(bias=bias)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    mean, cov = _dense_conditional(layer, x)
    var = torch.diagonal(cov, dim1=-2, dim2=-1)  # (B, out)
    # the conditional keeps the outputs of one input independent (V diagonal), as the layer assumes
    assert (cov - torch.diag_embed(var)).abs().max() < 1e-12
    # the conditioning matters: the moments differ from the unconditioned ones
    plain = x @ layer.weight_mu.detach().T + (layer.bias_mu.detach() if bias else 0.0)
    assert (mean - plain).abs().max() > 0.1
    assert (var / ((x * x) @ layer.U.detach())[:, None] / layer.V.detach()).min() < 0.9
    with torch.no_grad():
        got_mean, got_var = layer.conditional_moments(x)
        bias_var = layer.bias_std**2 if bias else 0.0
        torch.testing.assert_close(got_mean, mean, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(got_var + bias_var, var, rtol=1e-8, atol=1e-12)
        with sampling_mode(layer, "mean"):
            torch.testing.assert_close(layer(x), mean, rtol=1e-8, atol=1e-10)
        # Monte-Carlo of the layer's own samples: n draws of every input row
        n = 20000
        layer.generator = torch.Generator().manual_seed(4)
        out = layer(x.expand(n, -1, -1))  # (n, B, out)
    sd = var.sqrt()
    assert ((out.mean(0) - mean).abs() / (sd / math.sqrt(n))).max() < 4.5
    assert (out.var(0) / var - 1).abs().max() < 4.5 * math.sqrt(2 / (n - 1))
    assert out.shape == (n, 6, 3)


def test_pseudo_data_forward_gradcheck() -> None:
    layer = _pseudo_layer(p=2, n_in=3, n_out=2)
    names = [name for name, _ in layer.named_parameters()]
    assert {"pseudo_inputs", "pseudo_outputs"} <= set(names)
    params = tuple(p.detach().clone().requires_grad_(True) for p in layer.parameters())
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)

    def forward(x: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        layer.generator = torch.Generator().manual_seed(11)
        return torch.func.functional_call(layer, dict(zip(names, values)), (x,))

    assert torch.autograd.gradcheck(forward, (x, *params))


def _todays_forward(layer: LinearMVG, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The plain layer's sampled forward as it was before pseudo-data, written out op for op."""
    mean = torch.nn.functional.linear(x, layer.weight_mu, layer.bias_mu)
    var = ((x * x) @ layer.U).unsqueeze(-1) * layer.V + layer.bias_std.square()
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return torch.addcmul(mean, var.sqrt(), eps)


def test_pseudo_data_zero_is_bit_identical_to_the_plain_layer() -> None:
    torch.manual_seed(7)
    default = LinearMVG(37, 4)
    torch.manual_seed(7)
    zero = LinearMVG(37, 4, pseudo_data=0)
    assert [n for n, _ in zero.named_parameters()] == ["weight_mu", "log_u", "log_v", "bias_mu", "bias_rho"]
    assert list(zero.state_dict()) == list(default.state_dict())
    x = torch.randn(64, 37)
    zero.generator = torch.Generator().manual_seed(9)
    with torch.no_grad():
        got = zero(x)
        expected = _todays_forward(zero, x, torch.Generator().manual_seed(9))
        assert torch.equal(got, expected)
        for a, b in zip(zero.parameters(), default.parameters()):
            assert torch.equal(a, b)
        assert torch.equal(zero.kl_divergence(), default.kl_divergence())
    # pseudo-data draw their initial values last: the other parameters keep the same seed's values
    torch.manual_seed(7)
    with_p = LinearMVG(37, 4, pseudo_data=3)
    for name, value in default.named_parameters():
        assert torch.equal(getattr(with_p, name), value)
    assert with_p.pseudo_inputs.abs().max() <= 0.01 and with_p.pseudo_outputs.shape == (3, 4)
    # the KL with pseudo-data is the unconditioned MN's (the paper's surrogate, see the module)
    assert torch.equal(with_p.kl_divergence(), default.kl_divergence())


@pytest.mark.parametrize("bad", [-1, 2.5, True, "5"])
def test_bad_pseudo_data_values(bad: object) -> None:
    with pytest.raises(ValueError, match="pseudo_data must be an int >= 0"):
        LinearMVG(3, 2, pseudo_data=bad)  # type: ignore[arg-type]
    method = get_method("mvg", hidden=(4,), steps=5, pseudo_data=bad)
    with pytest.raises(VBayesError, match="pseudo_data must be an int >= 0") as err:
        method.fit(torch.randn(10, 2), torch.randn(10))
    assert "\n" not in str(err.value)


def _dense_layer_kl(layer: LinearMVG) -> torch.Tensor:
    """KL of the unconditioned MN(M, U, V) and the bias to the prior, by torch.distributions on
    the vectorised Kronecker form (float64)."""
    m = layer.weight_mu.detach().double().T
    u, v = layer.U.detach().double(), layer.V.detach().double()
    p = layer.prior
    q = D.MultivariateNormal(m.T.reshape(-1), covariance_matrix=torch.kron(torch.diag(v), torch.diag(u)))
    n = m.numel()
    prior = D.MultivariateNormal(torch.full((n,), float(p.loc_value), dtype=torch.float64),
                                 covariance_matrix=p.scale_value**2 * torch.eye(n, dtype=torch.float64))
    kl = D.kl_divergence(q, prior)
    if layer.bias_mu is not None:
        kl = kl + D.kl_divergence(D.Normal(layer.bias_mu.detach().double(), layer.bias_std.detach().double()),
                                  D.Normal(float(p.loc_value), p.scale_value)).sum()
    return kl


def test_mvg_with_pseudo_data_fits_toy_gap_and_its_objective_is_the_hand_computed_one() -> None:
    from vbayes.data import load

    data = load("toy-gap")
    xm, xs = data.x_train.mean(0), data.x_train.std(0)
    ym, ys = data.y_train.mean(), data.y_train.std()
    x, y = (data.x_train - xm) / xs, (data.y_train - ym) / ys
    noise = data.meta["noise_std"] / float(ys)  # the true noise level, standardised
    method = get_method("mvg", seed=0, hidden=(50,), noise="fixed", noise_std=noise, steps=1500, pseudo_data=5,
                        elbo_samples=400).fit(x, y)
    layers = [m for m in method.model.modules() if isinstance(m, LinearMVG)]
    assert len(layers) == 2 and all(layer.pseudo_data == 5 for layer in layers)
    # the fit: test RMSE within 1.5x the noise level (measured: about 0.076 against a noise of 0.071)
    pred = method.predict((data.x_test - xm) / xs)
    rmse = float((pred.mean - (data.y_test - ym) / ys).pow(2).mean().sqrt())
    assert rmse < 1.5 * noise
    # the KL: the unconditioned MN's per layer, by torch.distributions on the Kronecker form
    kl = sum(_dense_layer_kl(layer) for layer in layers)
    assert method.info["kl"] == pytest.approx(float(kl), rel=1e-5)
    # the objective: mean over draws of the Gaussian log-likelihood of the training set - KL / N,
    # by hand from the model's own draws, within the two estimates' Monte-Carlo error
    n, draws = x.shape[0], 400
    with torch.no_grad():
        f = torch.stack([method.model(x).squeeze(-1) for _ in range(draws)]).double()  # (draws, N)
    loglik = (-0.5 * math.log(2 * math.pi * noise**2) - (y.double() - f) ** 2 / (2 * noise**2)).mean(1)
    elbo = float(loglik.mean()) - float(kl) / n
    se = math.hypot(float(loglik.std()) / math.sqrt(draws), method.info["elbo_se"])
    assert abs(method.info["elbo"] - elbo) < 4 * se + 1e-6
