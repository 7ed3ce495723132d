"""to_bayesian: hyperparameters kept, exact reproduction as sigma -> 0, MOPED, errors; predict; elbo."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import vbayes
from vbayes import layers as L
from vbayes.layers._variational import MIN_MOPED_STD

from _tolerance import assert_close_ulps


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=1, groups=2, padding_mode="reflect"),
        nn.ReLU(),
        nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, bias=False),
        nn.Flatten(),
        nn.Linear(3 * 8 * 8, 5),
        nn.Sequential(nn.Conv1d(1, 2, 2)),  # nested container
    )


def _x():
    return torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(1))


class _Wrap(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("estimator", ["flipout", "reparam", "bbb", "lrt", "LRT"])
def test_reproduces_original_exactly_with_tiny_sigma(estimator):
    model = _Wrap()
    x = torch.randn(6, 4)
    bayes = vbayes.to_bayesian(model, estimator, posterior_std_init=1e-12)
    assert isinstance(bayes.body[0], L.VariationalLayer) and isinstance(model.body[0], nn.Linear)  # a copy
    # sampling: the estimator's own code path plus a ~1e-12 perturbation, equal to rounding
    assert_close_ulps(bayes(x), model(x))
    with vbayes.sampling_mode(bayes, "mean"):
        assert torch.equal(bayes(x), model(x))  # bit for bit: the very op of nn.Linear on copied tensors


@pytest.mark.parametrize("estimator", ["flipout", "reparam", "lrt"])
def test_keeps_every_hyperparameter(estimator):
    model = _model().eval()
    bayes = vbayes.to_bayesian(model, estimator, posterior_std_init=1e-12)
    conv, convt, lin = bayes[0], bayes[2], bayes[4]
    assert (conv.stride, conv.padding, conv.groups, conv.padding_mode) == ((2, 2), (1, 1), 2, "reflect")
    assert (convt.stride, convt.output_padding, convt.bias_mu) == ((2, 2), (1, 1), None)
    assert isinstance(bayes[5][0], L.VariationalLayer) and lin.in_features == 192
    assert not bayes.training
    x = _x()
    with vbayes.sampling_mode(bayes, "mean"):
        assert torch.equal(bayes[:5](x), model[:5](x))  # the same F.conv* calls on copied tensors
    assert_close_ulps(bayes[:5](x), model[:5](x))  # sampling with sigma = 1e-12: equal to rounding


def test_moped_initialisation():
    model = _Wrap()
    with torch.no_grad():
        model.body[0].weight[0, 0] = 0.0
    bayes = vbayes.to_bayesian(model, "reparam", moped_delta=0.1)
    layer, src = bayes.body[0], model.body[0]
    assert torch.equal(layer.weight_mu, src.weight) and torch.equal(layer.bias_mu, src.bias)
    expected = (0.1 * src.weight.abs()).clamp_min(MIN_MOPED_STD)
    torch.testing.assert_close(layer.weight_std, expected, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(layer.bias_std, 0.1 * src.bias.abs(), rtol=1e-5, atol=1e-12)


def test_single_module_and_inplace():
    lin = nn.Linear(3, 2)
    out = vbayes.to_bayesian(lin, "lrt")
    assert isinstance(out, L.LinearLRT)
    seq = nn.Sequential(nn.Linear(3, 2))
    same = vbayes.to_bayesian(seq, inplace=True)
    assert same is seq and isinstance(seq[0], L.LinearFlipout)


def test_errors():
    with pytest.raises(ValueError, match="unknown estimator 'dropout'; choose one of reparam, flipout, lrt, bbb"):
        vbayes.to_bayesian(_Wrap(), "dropout")
    with pytest.raises(ValueError, match="moped_delta must be"):
        vbayes.to_bayesian(_Wrap(), moped_delta=0.0)
    with pytest.raises(ValueError, match="lazy"):
        vbayes.to_bayesian(nn.Sequential(nn.LazyLinear(3)))


def test_predict_samples_and_moments():
    torch.manual_seed(0)
    model = nn.Sequential(L.LinearLRT(3, 2, posterior_std_init=0.3))
    x = torch.randn(4, 3)
    samples = vbayes.predict(model, x, 50)
    assert samples.shape == (50, 4, 2) and not samples.requires_grad
    model[0].generator = torch.Generator().manual_seed(3)
    mean, var = vbayes.predict(model, x, 50, reduce=True)
    model[0].generator = torch.Generator().manual_seed(3)
    again = vbayes.predict(model, x, 50)
    torch.testing.assert_close(mean, again.mean(0))
    torch.testing.assert_close(var, again.var(0))
    with pytest.raises(ValueError, match="n_samples must be a positive int"):
        vbayes.predict(model, x, 0)


def test_elbo_loss_scaling():
    model = nn.Sequential(L.LinearReparam(3, 2))
    nll = torch.tensor([1.0, 2.0, 4.0])
    model(torch.randn(1, 3))
    loss = vbayes.elbo_loss(nll, model, dataset_size=1000)
    torch.testing.assert_close(loss, nll.mean() + vbayes.kl_divergence(model) / 1000)
    with pytest.raises(ValueError, match="dataset_size must be a positive int"):
        vbayes.elbo_loss(nll, model, 0)
