"""The AE / VAE / Bayesian-AE comparison: the measurements through one interface, the choice of
inputs, the library call end to end with its report rendered in Chromium, and ``vbayes compare-ae``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from vbayes.studies.autoencoders.ambiguous import Ambiguity
from vbayes.studies.autoencoders.compare import choose_inputs, compare_autoencoders
from vbayes.studies.autoencoders.latent import knn_accuracy, latent_moments, silhouette
from vbayes.studies.autoencoders.views import AutoencoderView, blend_pairs, expected_recon_nll, measure_latent_space
from vbayes.cli import main
from vbayes.data import ImageData, load
from vbayes.errors import VBayesError

MODEL_KEYS = {"knn_accuracy", "silhouette", "latent_mean", "latent_std", "blend_mean_change",
              "blend_max_change", "test_recon_nll"}


def _linear_view(stochastic: bool, noise: float = 0.5) -> AutoencoderView:
    """A hand-made 'auto-encoder' on 2x2 images: code = the first two pixels; decode puts a code
    back into those pixels (others 0.5); Bernoulli likelihood on the decoded means."""

    def point(x):
        return x.flatten(1)[:, :2]

    def sample(x):
        z = point(x)
        return z + noise * torch.randn_like(z)

    def decode(z):
        out = torch.full((len(z), 4), 0.5)
        out[:, :2] = z.clamp(0.01, 0.99)
        return out.view(-1, 1, 2, 2)

    def loglik(z, x):
        p = decode(z)
        return (x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)

    return AutoencoderView("toy", "toy", point, sample if stochastic else None, decode, loglik, False)


def test_measurements_through_a_view_equal_the_direct_functions():
    gen = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = np.clip(gen.normal(0.2 + 0.3 * y[:, None], 0.05, size=(60, 4)), 0, 1).astype(np.float32)
    x = torch.tensor(x).view(60, 1, 2, 2)
    yt = torch.tensor(y)
    view = _linear_view(stochastic=False)
    target = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    out = measure_latent_space(view, x, yt, x, yt, target, pairs=[(0, 59)], steps=5, k=3)
    z = x.flatten(1)[:, :2]
    assert set(MODEL_KEYS) <= set(out)
    assert out["knn_accuracy"] == pytest.approx(knn_accuracy(z, yt, z, yt, k=3))
    assert out["silhouette"] == pytest.approx(silhouette(z, yt))
    assert out["latent_mean"] == pytest.approx(latent_moments(z)[0])
    # blend: decoded pixels move linearly from x[0] to x[59] in the two code pixels, in 4 equal steps
    step = (z[59] - z[0]).abs().sum().item() / 4 / 4
    assert out["blend_mean_change"] == pytest.approx(step, rel=1e-4)
    assert out["blend_max_change"] == pytest.approx(step, rel=1e-4)
    # the reconstruction NLL encodes the scored (binarised) images themselves, as the VAE's does
    p = view.decode_mean(view.point_code(target)).flatten(1)
    t = target.flatten(1)
    direct = -(t * p.log() + (1 - t) * (1 - p).log()).sum(1).mean().item()
    assert out["test_recon_nll"] == pytest.approx(direct, rel=1e-5)


def _coin_view(noise: float | None) -> AutoencoderView:
    """Code = 0.5 whatever the input (plus N(0, noise^2) when stochastic); every pixel decodes to the code."""

    def point(x):
        return torch.full((len(x), 1), 0.5)

    def sample(x):
        return (point(x) + noise * torch.randn(len(x), 1)).clamp(0.05, 0.95)

    def loglik(z, x):
        p = z.view(-1, 1, 1, 1).expand_as(x)
        return (x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)

    return AutoencoderView("coin", "coin", point, None if noise is None else sample,
                           lambda z: z.view(-1, 1, 1, 1).expand(-1, 1, 2, 2), loglik, False)


def test_expected_nll_averages_over_the_models_randomness():
    torch.manual_seed(0)
    target = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).expand(50, 1, 2, 2)  # half the pixels on
    det, noisy = _coin_view(None), _coin_view(0.2)
    assert expected_recon_nll(det, target, n_samples=20) == pytest.approx(4 * np.log(2), rel=1e-6)
    # E over p of -(log p + log(1 - p)) * 2 for p = clamp(0.5 + 0.2 eps): by Monte Carlo, independently
    p = (0.5 + 0.2 * torch.randn(200_000, dtype=torch.float64)).clamp(0.05, 0.95)
    expected = float((-2 * (p.log() + (1 - p).log())).mean())
    torch.manual_seed(1)
    got = expected_recon_nll(noisy, target, n_samples=400)
    # 400 draws x 50 inputs of a quantity with sd < 1.5 nats: 5 standard errors < 0.02 nats
    assert got == pytest.approx(expected, abs=0.02) and got > 4 * np.log(2) + 0.1


def test_blend_pairs_pick_the_clearest_example_of_each_class():
    y = torch.tensor([4, 9, 4, 9, 2])
    assert blend_pairs(y, [(4, 9), (2, 3)]) == [(0, 1)]  # first examples; no 3 in y
    confidence = torch.tensor([0.5, 0.9, 0.99, 0.2, 1.0])
    assert blend_pairs(y, [(4, 9), (9, 2)], confidence) == [(2, 1), (1, 4)]


def test_choose_inputs_puts_ambiguous_first_then_typical():
    y = torch.tensor([4, 9, 4, 9, 2, 3, 2, 3])
    frac = torch.zeros(8, 10, dtype=torch.float64)
    frac[torch.arange(8), y] = 1.0
    frac[2, 4], frac[2, 9] = 0.6, 0.4  # the Bayesian AE finds input 2 ambiguous (4 / 9)
    vae = frac.clone()
    vae[3, 9], vae[3, 4] = 0.8, 0.2  # the VAE finds input 3 ambiguous
    amb = {"bae": Ambiguity(frac, frac.float()), "vae": Ambiguity(vae, vae.float())}
    chosen = choose_inputs(amb, y, show=4)
    assert chosen[0] == (2, "ambiguous (bae)") and chosen[1] == (3, "ambiguous (vae)")
    # then the first digit of each class not shown yet
    assert chosen[2:] == [(4, "typical"), (5, "typical")]
    more = choose_inputs(amb, y, show=7)  # more slots than classes: filled in order, no repeats
    assert [i for i, _ in more] == [2, 3, 4, 5, 0, 1, 6]


def _small_mnist(every: int = 7) -> ImageData:
    d = load("mnist5k")  # every k-th example keeps the split stratified (the files are sorted by class)
    return ImageData("mnist5k", d.x_train[::every], d.y_train[::every], d.x_val[::every], d.y_val[::every],
                     d.x_test[::4], d.y_test[::4])


OPTIONS = dict(hidden=32, samples=12, search_samples=6, classifier_epochs=3, iw_samples=5, show=6, clouds=3,
               blend_steps=6)


@pytest.mark.slow
def test_compare_autoencoders_end_to_end_with_rendered_report(tmp_path):
    from browser import chromium_path, render_report

    from vbayes.report import Report

    data = _small_mnist()
    report = Report("comparison test")
    out = compare_autoencoders(data, latent=2, epochs=2, seed=0, report=report, out_dir=tmp_path / "runs", **OPTIONS)
    for key in ("ae", "vae", "bae"):
        m = out[key]
        assert MODEL_KEYS <= set(m)
        assert 0.0 <= m["knn_accuracy"] <= 1.0 and -1.0 <= m["silhouette"] <= 1.0
        assert len(m["latent_mean"]) == 2 and len(m["latent_std"]) == 2
        assert 0 < m["blend_mean_change"] <= m["blend_max_change"] <= 1.0
        assert m["test_recon_nll"] > 0
        assert (tmp_path / "runs" / key / "checkpoint.pt").exists()
    assert out["ae"]["mean_predictive_std"] == 0.0
    assert out["vae"]["mean_predictive_std"] > 0 and out["bae"]["mean_predictive_std"] > 0
    assert len(out["ambiguous"]) == OPTIONS["show"]
    assert len({r["test index"] for r in out["ambiguous"]}) == OPTIONS["show"]
    page = report.write(tmp_path / "page")
    html = page.read_text()
    for needle in ("Latent maps", "Reconstructions", "Blending", "Decoded manifold", "kNN acc."):
        assert needle in html
    if chromium_path() is None:
        pytest.skip("chromium not installed: report written but not rendered")
    result = render_report(page, tmp_path / "shots")
    assert result["images"] >= 9 and result["all_images_loaded"], result["broken"]
    assert not result["overflows"], result["offenders"]
    assert result["screenshot"] is not None and result["screenshot"].stat().st_size > 10_000


def test_compare_rejects_bad_settings_and_data():
    data = _small_mnist(every=50)
    with pytest.raises(VBayesError, match="latent must be >= 1"):
        compare_autoencoders(data, latent=0, epochs=1)
    with pytest.raises(VBayesError, match="samples must be >= 1"):
        compare_autoencoders(data, latent=2, epochs=1, samples=0)
    with pytest.raises(VBayesError, match="labelled image data"):
        compare_autoencoders(load("moons"), latent=2, epochs=1)
    with pytest.raises(TypeError, match="unknown option"):
        compare_autoencoders(data, latent=2, epochs=1, colour="red")


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code)


@pytest.mark.slow
def test_cli_compare_ae_writes_metrics_per_model(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare-ae", "--data", "digits", "--latent", "2", "--hidden", "16", "--epochs", "1", "--samples", "5",
            "--search-samples", "3", "--search-inputs", "60", "--iw-samples", "3", "--out", str(out), "--no-progress"]
    # a previous comparison in --out: refused without --overwrite, replaced cleanly with it
    (out / "ae").mkdir(parents=True)
    (out / "ae" / "stale.txt").write_text("old")
    (out / "metrics.json").write_text("{}")
    (out / ".vbayes-run").write_text("")  # the marker of a vbayes run directory
    assert exit_code(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert exit_code([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["ae", "vae", "bae", "ambiguous.json", "config.json", "metrics.json", "report.html", "figures",
         ".vbayes-run"])
    assert not (out / "ae" / "stale.txt").exists() and (out / "bae" / "checkpoint.pt").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"ae", "vae", "bae"}
    for key in metrics:
        assert MODEL_KEYS <= set(metrics[key])
    extra = json.loads((out / "ambiguous.json").read_text())
    assert extra["ambiguity_summary"]["bae"]["searched"] == 60
    assert len(list((out / "figures").glob("*.png"))) >= 8
    config = json.loads((out / "config.json").read_text())
    assert config["command"].startswith("vbayes compare-ae --data digits")


@pytest.mark.parametrize("argv, message", [
    (["--latent", "0"], "--latent must be >= 1"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--search-samples", "-1"], "--search-samples must be >= 1"),
    (["--data", "moons"], "need labelled image data"),
    (["--data", "digits", "--arch", "conv", "--epochs", "0"], "must be >= 1"),
])
def test_cli_compare_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert exit_code(["compare-ae", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()
