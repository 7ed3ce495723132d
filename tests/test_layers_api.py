"""Layer API: shapes, dtypes, devices, nn.Sequential, state_dict, modes, KL cache, errors."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import distributions as D
from torch import nn

import vbayes
from vbayes import layers as L
from vbayes.layers.priors import Normal, ScaleMixture

from _tolerance import assert_close_ulps

LINEAR = [L.LinearReparam, L.LinearFlipout, L.LinearLRT]
CONV2D = [L.Conv2dReparam, L.Conv2dFlipout, L.Conv2dLRT]
CONVT2D = [L.ConvTranspose2dReparam, L.ConvTranspose2dFlipout, L.ConvTranspose2dLRT]


@pytest.mark.parametrize("cls", LINEAR)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_linear_shapes_and_dtypes(cls, dtype):
    layer = cls(7, 3, dtype=dtype)
    for shape in [(5, 7), (7,), (2, 4, 7)]:
        y = layer(torch.randn(shape, dtype=dtype))
        assert isinstance(y, torch.Tensor) and y.shape == shape[:-1] + (3,) and y.dtype == dtype
    assert layer.weight_mu.shape == (3, 7) and layer.weight_std.shape == (3, 7)
    assert layer.bias_mu.shape == (3,) and layer.bias_std.shape == (3,)
    torch.testing.assert_close(layer.weight_std, torch.full((3, 7), 1e-3, dtype=dtype))
    assert layer.kl_divergence().shape == () and layer.kl_divergence().dtype == dtype


@pytest.mark.parametrize("cls, nn_cls", list(zip(CONV2D, [nn.Conv2d] * 3)) + list(zip(CONVT2D, [nn.ConvTranspose2d] * 3)))
def test_conv_output_shapes_match_torch(cls, nn_cls):
    kw = dict(stride=2, padding=1, dilation=1, groups=2)
    if nn_cls is nn.ConvTranspose2d:
        kw["output_padding"] = 1
    layer, ref = cls(4, 6, 3, **kw), nn_cls(4, 6, 3, **kw)
    assert layer.weight_mu.shape == ref.weight.shape
    x = torch.randn(2, 4, 9, 9)
    assert layer(x).shape == ref(x).shape
    assert layer(x[0]).shape == ref(x[0]).shape  # unbatched input


def test_no_bias_and_conv1d():
    layer = L.Conv1dFlipout(3, 5, 3, bias=False)
    assert layer.bias_mu is None and layer.bias_std is None
    assert layer(torch.randn(2, 3, 10)).shape == (2, 5, 8)
    assert layer.kl_divergence().isfinite()


@pytest.mark.parametrize("cls", LINEAR)
def test_sequential_training_step_and_state_dict_round_trip(cls):
    torch.manual_seed(0)
    model = nn.Sequential(cls(4, 8), nn.ReLU(), cls(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    for _ in range(3):
        opt.zero_grad()
        loss = vbayes.elbo_loss(nn.functional.cross_entropy(model(x), y, reduction="none"), model, 100)
        loss.backward()
        opt.step()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    clone = nn.Sequential(cls(4, 8), nn.ReLU(), cls(8, 2))
    clone.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
    assert set(model.state_dict()) == set(clone.state_dict())
    with vbayes.sampling_mode(model, "mean"), vbayes.sampling_mode(clone, "mean"):
        assert torch.equal(model(x), clone(x))
    torch.testing.assert_close(model.state_dict()["0.weight_rho"], clone.state_dict()["0.weight_rho"])
    copy.deepcopy(model)  # the cached KL (part of a graph) must not break copying
    pickle.loads(pickle.dumps(model))


def test_sampling_modes_and_frozen_sample():
    torch.manual_seed(0)
    model = nn.Sequential(L.LinearFlipout(3, 4), nn.Tanh(), L.LinearLRT(4, 2), L.LinearReparam(2, 2))
    for m in model:
        if isinstance(m, L.VariationalLayer):
            m.weight_rho.data.fill_(-1.0)
    x = torch.randn(5, 3)
    assert not torch.equal(model(x), model(x))  # sampling in train mode ...
    model.eval()
    assert not torch.equal(model(x), model(x))  # ... and in eval mode
    with vbayes.sampling_mode(model, "mean"):
        a = model(x)
        assert torch.equal(a, model(x))
        with vbayes.sampling_mode(model, "sample"):
            assert not torch.equal(a, model(x))
        assert torch.equal(a, model(x))  # nested modes restore
    assert model[0].sampling == "sample"
    with vbayes.frozen_sample(model):
        f1 = model(x)
        assert torch.equal(f1, model(x))  # the same call again: bit for bit
        # one function: same output per input; a batch of 2 takes other BLAS paths than one of 5,
        # so equal to rounding only (a redrawn weight or sign would be off by ~sigma = 0.3)
        assert_close_ulps(model(x[:2]), f1[:2])
    with vbayes.frozen_sample(model):
        assert not torch.equal(f1, model(x))  # re-entry draws a new function
    with pytest.raises(ValueError, match="mode must be one of"):
        with vbayes.sampling_mode(model, "median"):
            pass


def test_seeded_generator_makes_draws_reproducible():
    layer = L.Conv2dFlipout(2, 3, 3)
    x = torch.randn(2, 2, 6, 6)
    outs = []
    for _ in range(2):
        layer.generator = torch.Generator().manual_seed(7)
        outs.append(layer(x))
    assert torch.equal(outs[0], outs[1])


def test_kl_is_cached_from_forward_and_refreshed_after_update():
    torch.manual_seed(0)
    layer = L.LinearReparam(5, 3, prior=Normal(0.1, 0.5))
    y = layer(torch.randn(4, 5))
    kl = layer.kl_divergence()
    assert kl is layer.kl_divergence()  # one evaluation per step
    q = D.Normal(layer.weight_mu, layer.weight_std)
    qb = D.Normal(layer.bias_mu, layer.bias_std)
    p = D.Normal(torch.tensor(0.1), torch.tensor(0.5))
    expected = D.kl_divergence(q, p).sum() + D.kl_divergence(qb, p).sum()
    torch.testing.assert_close(kl, expected)
    (y.sum() + kl).backward()
    with torch.no_grad():
        layer.weight_rho.add_(0.5)  # an optimiser step changes the parameters in place
    fresh = layer.kl_divergence()
    assert fresh is not kl and fresh.item() != pytest.approx(kl.item())
    with torch.no_grad():
        layer(torch.randn(4, 5))  # no-grad forwards skip the KL ...
    assert layer.kl_divergence().requires_grad  # ... and a later call computes it with grad


def test_scale_mixture_prior_layer_trains():
    layer = L.LinearFlipout(3, 2, prior=ScaleMixture(0.5, 1.0, 0.01))
    y = layer(torch.randn(4, 3))
    kl = layer.kl_divergence()
    (y.sum() + kl).backward()
    assert layer.weight_rho.grad.abs().sum() > 0 and kl.isfinite()
    lrt = L.LinearLRT(3, 2, prior=ScaleMixture(0.5, 1.0, 0.01))
    lrt(torch.randn(4, 3))
    assert lrt.kl_divergence().requires_grad


def test_kl_divergence_sums_over_model():
    model = nn.Sequential(L.LinearReparam(3, 4), nn.ReLU(), L.Conv1dLRT(1, 1, 2))
    total = vbayes.kl_divergence(model)
    torch.testing.assert_close(total, model[0].kl_divergence() + model[2].kl_divergence())


@pytest.mark.parametrize("cls", LINEAR)
def test_bad_linear_input_names_layer_and_shape(cls):
    layer = cls(4, 2)
    with pytest.raises(ValueError, match=rf"{cls.__name__}: expected input of shape \(\*, 4\), got \(3, 5\)"):
        layer(torch.randn(3, 5))
    with pytest.raises(TypeError, match=cls.__name__):
        layer([1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("cls", CONV2D + CONVT2D)
def test_bad_conv_input_names_layer_and_shape(cls):
    layer = cls(3, 2, 3)
    with pytest.raises(ValueError, match=rf"{cls.__name__}: expected input of shape \(N, 3, H, W\)"):
        layer(torch.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match=cls.__name__):
        layer(torch.randn(8, 8))


@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan"), float("inf")])
def test_bad_posterior_std_init(bad):
    with pytest.raises(ValueError, match="LinearFlipout: posterior_std_init must be a finite number > 0"):
        L.LinearFlipout(2, 2, posterior_std_init=bad)
    with pytest.raises(ValueError, match="Conv2dLRT: posterior_std_init"):
        L.Conv2dLRT(1, 1, 3, posterior_std_init=bad)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="LinearReparam: in_features must be a positive int"):
        L.LinearReparam(0, 2)
    with pytest.raises(ValueError, match="divisible by groups"):
        L.Conv2dFlipout(3, 4, 3, groups=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("cls", LINEAR + CONV2D)
def test_cuda(cls):
    layer = cls(3, 4, 3).cuda() if cls in CONV2D else cls(3, 4).cuda()
    x = torch.randn(2, 3, 8, 8, device="cuda") if cls in CONV2D else torch.randn(2, 3, device="cuda")
    y = layer(x)
    (y.sum() + layer.kl_divergence()).backward()
    assert y.device.type == "cuda" and layer.weight_rho.grad.device.type == "cuda"
