"""The Bayesian auto-encoder: structure, loss scaling, the S-sample reconstruction summary
(Monte-Carlo moments against closed forms, bounded chunks), training, and ``vbayes bae``."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal as TorchNormal
from torch.distributions import kl_divergence as torch_kl

from vbayes import kl_divergence, sampling_mode
from vbayes.cli import main
from vbayes.layers import LinearFlipout, LinearLRT, LinearReparam, VariationalLayer
from vbayes.models.bae import DEFAULT_PRIOR_SCALE, BayesianAE, sample_reconstructions
from vbayes.layers.priors import Normal

SHAPE = (1, 8, 8)


def _variational(module: nn.Module) -> list[VariationalLayer]:
    return [m for m in module.modules() if isinstance(m, VariationalLayer)]


@pytest.mark.parametrize("estimator, cls", [("flipout", LinearFlipout), ("reparam", LinearReparam), ("lrt", LinearLRT)])
def test_encoder_is_bayesian_decoder_is_not(estimator, cls):
    model = BayesianAE("mlp", SHAPE, latent=3, hidden=16, estimator=estimator)
    enc = _variational(model.encoder)
    assert len(enc) == 2 and all(type(m) is cls for m in enc)
    assert _variational(model.decoder) == []
    assert not any(isinstance(m, nn.Linear) for m in model.encoder.modules())
    both = BayesianAE("mlp", SHAPE, latent=3, hidden=16, estimator=estimator, bayesian_decoder=True)
    assert len(_variational(both.decoder)) == 2
    conv = BayesianAE("conv", SHAPE, latent=3, hidden=16, estimator=estimator)
    assert len(_variational(conv.encoder)) == 4  # two convolutions, two dense layers
    assert conv(torch.rand(5, *SHAPE)).shape == (5, *SHAPE)


def test_loss_is_nll_plus_kl_over_n_against_torch_distributions():
    torch.manual_seed(0)
    model = BayesianAE("mlp", SHAPE, latent=2, hidden=16)
    x = torch.bernoulli(torch.rand(6, *SHAPE))
    n = 1234
    # independent KL: sum over every posterior weight of KL(N(mu, sigma) || N(0, 0.1^2))
    kl = sum(
        torch_kl(TorchNormal(p_mu, p_std), TorchNormal(0.0, DEFAULT_PRIOR_SCALE)).sum()
        for layer in _variational(model)
        for p_mu, p_std in ((layer.weight_mu, layer.weight_std), (layer.bias_mu, layer.bias_std))
    )
    with sampling_mode(model, "mean"):  # a deterministic forward, so the NLL can be recomputed
        loss = model.loss(x, n)
        logits = model.decoder(model.encoder(x))
    nll = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3)).mean()
    torch.testing.assert_close(loss, nll + kl / n, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(model.kl_per_example(n), kl / n, rtol=1e-5, atol=1e-6)
    assert loss.requires_grad


def test_default_prior_and_posterior_init():
    model = BayesianAE("mlp", SHAPE, latent=2, hidden=16, posterior_std_init=0.02)
    for layer in _variational(model):
        assert isinstance(layer.prior, Normal)
        assert float(layer.prior.scale) == pytest.approx(DEFAULT_PRIOR_SCALE)
        torch.testing.assert_close(layer.weight_std, torch.full_like(layer.weight_std, 0.02))
    custom = BayesianAE("mlp", SHAPE, latent=2, hidden=16, prior=Normal(0.0, 1.0))
    assert all(float(m.prior.scale) == 1.0 for m in _variational(custom))


def _linear_toy(mu_a: torch.Tensor, mu_b: torch.Tensor, s: float, calls: list[int]):
    """codes z = (mu_a, mu_b) + s * eps per input; decode(z) = z0 * A + z1 * B (linear, so the
    per-pixel mean is mu_a * A + mu_b * B and the variance s^2 (A^2 + B^2) exactly)."""
    a = torch.linspace(0.1, 1.0, 16).view(1, 4, 4)
    b = torch.linspace(1.0, -0.5, 16).view(1, 4, 4)

    def sample_code(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        idx = x[:, 0, 0, 0].long()
        mu = torch.stack([mu_a[idx], mu_b[idx]], 1)
        return mu + s * torch.randn_like(mu)

    def decode(z: torch.Tensor) -> torch.Tensor:
        calls.append(len(z))
        return z[:, 0].view(-1, 1, 1, 1) * a + z[:, 1].view(-1, 1, 1, 1) * b

    return sample_code, decode, a, b


def test_sample_reconstructions_moments_match_closed_form():
    torch.manual_seed(1)
    n, s_count, s = 5, 1500, 0.3
    mu_a, mu_b = torch.linspace(-1, 1, n), torch.linspace(2, 0, n)
    calls: list[int] = []
    sample_code, decode, a, b = _linear_toy(mu_a, mu_b, s, calls)
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    seen = torch.zeros(n, dtype=torch.int64)

    def on_sample(z, recon, index):
        seen[index] += 1

    out = sample_reconstructions(sample_code, decode, x, n_samples=s_count, chunk=2, on_sample=on_sample)
    assert out.mean.shape == x.shape and out.std.shape == x.shape and out.codes.shape == (s_count, n, 2)
    assert max(calls) <= 2  # never more than `chunk` inputs per forward, whatever S
    assert seen.tolist() == [s_count] * n
    true_mean = mu_a.view(n, 1, 1, 1) * a + mu_b.view(n, 1, 1, 1) * b
    true_std = (s * torch.sqrt(a**2 + b**2)).expand_as(true_mean)
    # 5 standard errors: of the mean, sd / sqrt(S); of the sample sd (Gaussian), sd / sqrt(2 S)
    assert ((out.mean - true_mean).abs() <= 5 * true_std / math.sqrt(s_count)).all()
    assert ((out.std - true_std).abs() <= 5 * true_std / math.sqrt(2 * s_count)).all()
    # the codes themselves: mean and spread of each input's cloud
    assert ((out.codes[:, :, 0].mean(0) - mu_a).abs() <= 5 * s / math.sqrt(s_count)).all()
    assert ((out.codes.std(0) - s).abs() <= 5 * s / math.sqrt(2 * s_count)).all()


def test_sample_reconstructions_keeps_codes_of_the_first_inputs_only():
    torch.manual_seed(3)
    calls: list[int] = []
    sample_code, decode, _, _ = _linear_toy(torch.zeros(6), torch.ones(6), 0.1, calls)
    x = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 1, 4, 4).contiguous()
    assert sample_reconstructions(sample_code, decode, x, 7, chunk=4, keep_codes=5).codes.shape == (7, 5, 2)
    none = sample_reconstructions(sample_code, decode, x, 7, chunk=4, keep_codes=0)
    assert none.codes.shape == (7, 0, 2) and none.mean.shape == x.shape


def test_sample_reconstructions_bad_arguments():
    f = lambda x: x.flatten(1)[:, :2]  # noqa: E731
    with pytest.raises(ValueError, match="n_samples"):
        sample_reconstructions(f, f, torch.zeros(2, 1, 2, 2), n_samples=0)
    with pytest.raises(ValueError, match="chunk"):
        sample_reconstructions(f, f, torch.zeros(2, 1, 2, 2), chunk=0)


@pytest.mark.parametrize("estimator", ["flipout", "reparam"])
def test_bae_reconstruction_distribution(estimator):
    torch.manual_seed(2)
    x = torch.rand(7, *SHAPE)
    wide = BayesianAE("mlp", SHAPE, latent=2, hidden=16, estimator=estimator, posterior_std_init=0.3)
    out = wide.sample_reconstructions(x, n_samples=50, chunk=3)
    assert out.codes.shape == (50, 7, 2)
    # every input gets its own independent draws, even with the shared-sample Reparam estimator
    assert (out.codes.std(0) > 1e-3).all()
    assert (out.std.flatten(1).mean(1) > 1e-4).all()
    assert float(out.mean.min()) >= 0.0 and float(out.mean.max()) <= 1.0
    # a posterior with sigma -> 0 reconstructs deterministically, like the posterior-mean network
    narrow = BayesianAE("mlp", SHAPE, latent=2, hidden=16, estimator=estimator, posterior_std_init=1e-9)
    out = narrow.sample_reconstructions(x, n_samples=5)
    assert float(out.std.max()) < 1e-5
    torch.testing.assert_close(out.mean, narrow.reconstruct(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.codes[0], narrow.mean_codes(x), atol=1e-5, rtol=0)


def test_bad_construction_and_input():
    with pytest.raises(ValueError, match="latent"):
        BayesianAE("mlp", SHAPE, latent=0)
    with pytest.raises(ValueError, match="posterior_std_init"):
        BayesianAE("mlp", SHAPE, latent=2, posterior_std_init=0.0)
    with pytest.raises(ValueError, match="estimator"):
        BayesianAE("mlp", SHAPE, latent=2, estimator="dropout")
    model = BayesianAE("mlp", SHAPE, latent=2, hidden=8)
    with pytest.raises(ValueError, match="expected images"):
        model.encode(torch.zeros(3, 1, 28, 28))


def test_training_lowers_the_loss_and_repeats_exactly():
    from vbayes.studies.autoencoders.fit import fit_bae
    from vbayes.data import ImageData, load
    from vbayes.train import TrainConfig

    full = load("digits")
    data = ImageData("digits", full.x_train[::2], full.y_train[::2], full.x_val, full.y_val, full.x_test, full.y_test)

    def run() -> list[dict]:
        torch.manual_seed(0)
        model = BayesianAE("mlp", data.image_shape, latent=2, hidden=16)
        return fit_bae(model, data, TrainConfig(epochs=3, batch_size=50, progress=False)).history

    first, second = run(), run()
    assert first[-1]["val_loss"] < first[0]["val_loss"]
    assert [r["val_loss"] for r in first] == [r["val_loss"] for r in second]
    for row in first:  # the logged terms add up to the loss
        assert row["train_loss"] == pytest.approx(row["nll"] + row["kl_per_example"], rel=1e-5)


def test_cli_bae_writes_a_run(tmp_path, capsys):
    out = tmp_path / "bae"
    code = main(["bae", "--data", "digits", "--latent", "2", "--hidden", "16", "--epochs", "2", "--samples", "8",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    for name in ("config.json", "metrics.json", "checkpoint.pt", "log.csv", "report.html"):
        assert (out / name).exists(), name
    assert len(list((out / "figures").glob("*.png"))) >= 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_elbo"] == pytest.approx(-(metrics["test_recon_nll"] + metrics["kl_per_example"]))
    assert metrics["test_recon_nll"] > 0 and metrics["kl_per_example"] > 0
    assert 0 < metrics["mean_predictive_std"] < 0.5 and metrics["predictive_samples"] == 8
    config = json.loads((out / "config.json").read_text())
    assert config["command"].startswith("vbayes bae --data digits")
    assert "report:" in capsys.readouterr().out


def exit_code(argv: list[str]) -> int:
    """``main(argv)``'s status, also when argparse exits (its errors raise SystemExit)."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code)


@pytest.mark.parametrize("argv, message", [
    (["--latent", "0"], "--latent must be >= 1"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--data", "moons"], "need labelled image data"),
    (["--data", "digits", "--arch", "conv", "--hidden", "0"], "must be >= 1"),
])
def test_cli_bae_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert exit_code(["bae", *argv, "--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()
