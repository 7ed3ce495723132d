"""``vbayes.predict`` on models whose forward returns a tuple or a named tuple of tensors (the VAE)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import vbayes
from vbayes.models import VAE, VAEOutput


class Pair(nn.Module):
    """Returns ``(x + noise, 2 * x)``: a noisy field and a deterministic one."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x + torch.randn_like(x), 2 * x


def test_predict_a_named_tuple_field_by_field() -> None:
    torch.manual_seed(0)
    vae = VAE("mlp", (1, 4, 4), latent=2, hidden=8)
    x = torch.rand(3, 1, 4, 4)
    samples = vbayes.predict(vae, x, 5)
    assert isinstance(samples, VAEOutput)
    assert samples.output.shape == (5, 3, 1, 4, 4) and samples.z.shape == (5, 3, 2) and samples.kl.shape == (5, 3)
    # mu and logvar do not depend on the sampled z: every draw is the same
    torch.testing.assert_close(samples.mu, samples.mu[:1].expand_as(samples.mu))
    assert samples.z.std(0).min() > 0  # z is drawn afresh each time

    mean, var = vbayes.predict(vae, x, 5, reduce=True)
    assert isinstance(mean, VAEOutput) and isinstance(var, VAEOutput)
    torch.manual_seed(1)
    again = vbayes.predict(vae, x, 40)
    torch.manual_seed(1)
    mean, var = vbayes.predict(vae, x, 40, reduce=True)
    for field in VAEOutput._fields:
        torch.testing.assert_close(getattr(mean, field), getattr(again, field).mean(0), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(getattr(var, field), getattr(again, field).var(0), atol=1e-5, rtol=1e-4)


def test_predict_one_selected_field_of_a_tuple() -> None:
    torch.manual_seed(0)
    vae = VAE("mlp", (1, 4, 4), latent=2, hidden=8)
    x = torch.rand(3, 1, 4, 4)
    assert vbayes.predict(vae, x, 4, output="output").shape == (4, 3, 1, 4, 4)
    mean, var = vbayes.predict(vae, x, 4, reduce=True, output="z")
    assert mean.shape == var.shape == (3, 2)

    x = torch.zeros(2, 3)
    noisy, double = vbayes.predict(Pair(), x, 200)
    assert type(noisy) is torch.Tensor and noisy.shape == (200, 2, 3)
    torch.testing.assert_close(double, torch.zeros(200, 2, 3))
    mean, var = vbayes.predict(Pair(), x, 400, reduce=True, output=0)
    assert var.mean().item() == pytest.approx(1.0, abs=0.15)


def test_predict_refuses_what_it_cannot_stack() -> None:
    x = torch.rand(3, 1, 4, 4)
    vae = VAE("mlp", (1, 4, 4), latent=2, hidden=8)
    with pytest.raises(TypeError, match="no such field"):
        vbayes.predict(vae, x, 2, output="logits")
    with pytest.raises(TypeError, match="returns 5 values"):
        vbayes.predict(vae, x, 2, output=7)

    class Dict(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"y": x}

    with pytest.raises(TypeError, match="must return a Tensor or a tuple of Tensors, got dict"):
        vbayes.predict(Dict(), x, 2)


def test_importing_the_old_module_path_keeps_the_function() -> None:
    import importlib

    module = importlib.import_module("vbayes.predict")  # the 0.1 path, an alias of vbayes.layers.predict
    assert module is importlib.import_module("vbayes.layers.predict")
    assert vbayes.predict is module.predict  # the package attribute is still the function
