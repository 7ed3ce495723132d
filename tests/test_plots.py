"""Tests of vbayes.plots: every function with and without an ``ax``, image placement, manifold grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from scipy.stats import norm
from sklearn.decomposition import PCA

from vbayes import plots as P

PAD = 2  # the gap between tiles that the mosaics use


def _images(n: int, c: int = 1, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g)


def _fresh_ax() -> Axes:
    return Figure().add_subplot()


def _axes_images(ax: Axes) -> list[AxesImage]:
    return [a for a in ax.get_children() if isinstance(a, AxesImage)]


def _tile(mosaic: np.ndarray, i: int, ncols: int, h: int, w: int, pad: int = PAD) -> np.ndarray:
    r, k = divmod(i, ncols)
    return np.asarray(mosaic[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w])


IMAGE_PLOTS = {
    "grid": lambda ax: P.plot_image_grid(_images(7), ax=ax),
    "samples": lambda ax: P.plot_samples(_images(7), ax=ax),
    "reconstructions": lambda ax: P.plot_reconstructions(_images(5), _images(5, seed=1), ax=ax),
    "mean_std": lambda ax: P.plot_mean_std(_images(4), _images(4) * 0.2, _images(4, seed=2), ax=ax),
    "blending": lambda ax: P.plot_blending(_images(6), ax=ax),
    "manifold": lambda ax: P.plot_manifold(lambda z: torch.zeros(len(z), 1, 8, 8), n=4, ax=ax),
    "latent_map": lambda ax: P.plot_latent_map(torch.randn(30, 2), torch.arange(30) % 3, ax=ax),
    "latent_clouds": lambda ax: P.plot_latent_clouds(torch.randn(20, 3, 2), ax=ax),
    "training_curves": lambda ax: P.plot_training_curves(
        [{"epoch": 1, "train_loss": 3.0, "val_loss": 3.5}, {"epoch": 2, "train_loss": 2.0, "val_loss": 2.5}], ax=ax),
}


@pytest.mark.parametrize("name", sorted(IMAGE_PLOTS))
def test_every_plot_returns_given_ax_or_a_new_one(name: str) -> None:
    plot = IMAGE_PLOTS[name]
    made = plot(None)
    assert isinstance(made, Axes) and isinstance(P.figure_for(made), Figure)
    given = _fresh_ax()
    assert plot(given) is given
    assert P.figure_for(given) is given.figure
    assert len(P.figure_to_png(P.figure_for(made))) > 1000


def test_image_grid_places_every_image_in_one_mosaic() -> None:
    x = _images(23, h=8, w=6)
    ax = P.plot_image_grid(x, ncols=10, title="grid")
    (im,) = _axes_images(ax)
    mosaic = im.get_array()
    assert mosaic.shape == (3 * (8 + PAD) - PAD, 10 * (6 + PAD) - PAD)
    assert int((~np.ma.getmaskarray(mosaic)).sum()) == 23 * 8 * 6  # exactly 23 tiles drawn
    for i in (0, 9, 10, 22):
        np.testing.assert_allclose(_tile(mosaic, i, 10, 8, 6), x[i, 0].double().numpy())
    assert ax.get_title() == "grid"


def test_image_grid_colour_and_clipping() -> None:
    x = _images(3, c=3) * 3 - 1  # values outside [0, 1]
    (im,) = _axes_images(P.plot_image_grid(x, ncols=2))
    data = np.asarray(im.get_array())
    assert data.shape == (2 * (8 + PAD) - PAD, 2 * (8 + PAD) - PAD, 3)
    assert data.min() >= 0.0 and data.max() <= 1.0


@pytest.mark.parametrize("bad", [torch.zeros(2, 2, 8, 8), torch.zeros(8, 8), torch.zeros(0, 1, 8, 8)])
def test_image_grid_rejects_bad_shapes(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="x: expected images"):
        P.plot_image_grid(bad)


def test_reconstructions_inputs_on_top_outputs_below_wrapping() -> None:
    x, x_hat = _images(12), _images(12, seed=5)
    ax = P.plot_reconstructions(x, x_hat, ncols=10)
    images = _axes_images(ax)
    assert len(images) == 4  # two groups (10 + 2 columns) of two rows
    tops = [im.get_extent()[3] for im in images]
    assert tops == sorted(tops)  # drawn top to bottom: input, output, input, output
    np.testing.assert_allclose(_tile(images[0].get_array(), 3, 10, 8, 8), x[3, 0].double().numpy())
    np.testing.assert_allclose(_tile(images[1].get_array(), 3, 10, 8, 8), x_hat[3, 0].double().numpy())
    np.testing.assert_allclose(_tile(images[3].get_array(), 1, 10, 8, 8), x_hat[11, 0].double().numpy())
    assert images[2].get_array().shape == (8, 2 * (8 + PAD) - PAD)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["input", "reconstruction"] * 2
    with pytest.raises(ValueError, match="shapes differ"):
        P.plot_reconstructions(x, x_hat[:5])


def test_mean_std_rows_and_std_scale() -> None:
    mean, x = _images(5), _images(5, seed=3)
    std = _images(5, seed=4) * 0.3
    ax = P.plot_mean_std(mean, std, x)
    images = _axes_images(ax)
    assert len(images) == 3
    np.testing.assert_allclose(_tile(images[0].get_array(), 2, 10, 8, 8), x[2, 0].double().numpy())
    np.testing.assert_allclose(_tile(images[1].get_array(), 2, 10, 8, 8), mean[2, 0].double().numpy())
    np.testing.assert_allclose(_tile(images[2].get_array(), 2, 10, 8, 8), std[2, 0].double().numpy())
    assert images[2].get_clim() == pytest.approx((0.0, float(std.max())))
    assert images[2].get_cmap().name != images[1].get_cmap().name
    assert len(P.figure_for(ax).axes) == 2  # the axes and the std colour bar
    no_input = P.plot_mean_std(mean, std, std_max=1.0)
    assert len(_axes_images(no_input)) == 2
    assert _axes_images(no_input)[1].get_clim() == (0.0, 1.0)
    with pytest.raises(ValueError, match="negative"):
        P.plot_mean_std(mean, -std)


def test_blending_one_row_labelled_with_weights() -> None:
    frames = _images(7)
    ax = P.plot_blending(frames)
    (im,) = _axes_images(ax)
    assert im.get_array().shape == (8, 7 * (8 + PAD) - PAD)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "0" and labels[-1] == "1"
    with pytest.raises(ValueError, match="alphas"):
        P.plot_blending(frames, alphas=[0.0, 1.0])


def test_manifold_decodes_the_normal_quantile_grid() -> None:
    n, q = 5, (0.1, 0.9)
    seen: list[torch.Tensor] = []

    def decode(z: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled()
        seen.append(z.clone())
        img = torch.empty(len(z), 1, 4, 4)  # left half encodes Phi(z1), right half Phi(z2)
        img[:, 0, :, :2] = torch.distributions.Normal(0.0, 1.0).cdf(z[:, 0])[:, None, None]
        img[:, 0, :, 2:] = torch.distributions.Normal(0.0, 1.0).cdf(z[:, 1])[:, None, None]
        return img

    ax = P.plot_manifold(decode, n=n, quantile_range=q)
    (z,) = seen
    values = norm.ppf(np.linspace(q[0], q[1], n))  # independent reference: scipy
    expected = np.array([[values[c], values[n - 1 - r]] for r in range(n) for c in range(n)])
    assert z.shape == (n * n, 2) and z.dtype == torch.float32
    np.testing.assert_allclose(z.numpy(), expected, atol=1e-6)
    (im,) = _axes_images(ax)
    mosaic = np.asarray(im.get_array())
    assert mosaic.shape == (n * 4, n * 4)  # no gaps in a manifold
    probs = np.linspace(q[0], q[1], n)
    top_right = mosaic[0:4, (n - 1) * 4:n * 4]
    bottom_left = mosaic[(n - 1) * 4:, 0:4]
    np.testing.assert_allclose(top_right[:, :2], probs[-1], atol=1e-5)  # largest z1 at the right
    np.testing.assert_allclose(top_right[:, 2:], probs[-1], atol=1e-5)  # largest z2 at the top
    np.testing.assert_allclose(bottom_left, probs[0], atol=1e-5)
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{v:.2f}" for v in values]
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{v:.2f}" for v in values[::-1]]


def test_manifold_grid_and_bad_arguments() -> None:
    values, z = P.manifold_grid(15)
    np.testing.assert_allclose(values.numpy(), norm.ppf(np.linspace(0.05, 0.95, 15)), atol=1e-12)
    assert z.shape == (225, 2)
    with pytest.raises(ValueError, match="quantile_range"):
        P.manifold_grid(5, (0.0, 0.9))
    with pytest.raises(ValueError, match="returned 3 images"):
        P.plot_manifold(lambda z: torch.zeros(3, 1, 4, 4), n=4)


def _scatters(ax: Axes) -> list[PathCollection]:
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def test_latent_map_colours_by_class_with_legend() -> None:
    g = torch.Generator().manual_seed(0)
    z, labels = torch.randn(200, 2, generator=g), torch.arange(200) % 10
    ax = P.plot_latent_map(z, labels, legend_title="digit")
    groups = _scatters(ax)
    assert ax.get_legend().get_title().get_text() == "digit"
    assert len(groups) == 10
    np.testing.assert_allclose(groups[3].get_offsets(), z[labels == 3].double().numpy(), rtol=1e-6)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [str(i) for i in range(10)]
    assert "PCA" not in ax.get_title()


def test_latent_map_projects_larger_latents_and_says_so() -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(300, 6, generator=g) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    ax = P.plot_latent_map(z, torch.zeros(300, dtype=torch.long))
    assert "PCA projection of 6-D codes" in ax.get_title()
    reference = PCA(n_components=2).fit(z.double().numpy())
    projected, explained = P.project_2d(z)
    np.testing.assert_allclose(np.abs(projected), np.abs(reference.transform(z.double().numpy())), atol=1e-8)
    np.testing.assert_allclose(explained, reference.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(_scatters(ax)[0].get_offsets(), projected, atol=1e-8)


def test_latent_map_other_label_kinds() -> None:
    z = torch.randn(50, 2)
    assert len(_scatters(P.plot_latent_map(z, None))) == 1
    continuous = P.plot_latent_map(z, torch.linspace(0, 1, 50))
    assert len(P.figure_for(continuous).axes) == 2  # colour bar instead of legend
    strip = P.plot_latent_map(torch.randn(40, 1), torch.arange(40) % 2, projected=True, title="t")
    assert strip.get_title() == "t"
    with pytest.raises(ValueError, match="labels for"):
        P.plot_latent_map(z, torch.arange(3))


def test_latent_clouds_draw_each_input_and_mark_means() -> None:
    g = torch.Generator().manual_seed(2)
    zs = torch.randn(40, 3, 2, generator=g) * 0.1 + torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    ax = P.plot_latent_clouds(zs, labels=torch.tensor([4, 9, 7]))
    groups = _scatters(ax)
    assert len(groups) == 6  # a cloud and a mean marker per input
    np.testing.assert_allclose(groups[2].get_offsets(), zs[:, 1].double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(groups[3].get_offsets()[0], zs[:, 1].double().mean(0).numpy(), rtol=1e-6)
    assert "label 9" in [t.get_text() for t in ax.get_legend().get_texts()][1]
    base = P.plot_latent_map(torch.randn(30, 2), torch.arange(30) % 3, title="map")
    assert P.plot_latent_clouds(zs, ax=base) is base
    assert base.get_title() == "map"  # overlaying keeps the map's labels
    projected = P.plot_latent_clouds(torch.randn(10, 2, 5))
    assert "PCA" in projected.get_title()


def test_training_curves_from_csv_like_rows() -> None:
    history = [{"epoch": "1", "train_loss": "3.0", "val_loss": "3.4"},
               {"epoch": "2", "train_loss": "2.0", "val_loss": ""},
               {"epoch": "3", "train_loss": "1.5", "val_loss": "2.1"}]
    ax = P.plot_training_curves(history, keys=("train_loss", "val_loss", "absent"))
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines[:2]] == ["train_loss", "val_loss"]
    np.testing.assert_allclose(lines[0].get_xdata(), [1, 2, 3])
    assert np.isnan(lines[1].get_ydata()[1])
    assert lines[2].get_xdata()[0] == 3 and lines[2].get_ydata()[0] == pytest.approx(2.1)  # best val
    with pytest.raises(ValueError, match="none of"):
        P.plot_training_curves(history, keys=("nope",))
    with pytest.raises(ValueError, match="empty"):
        P.plot_training_curves([])


def test_save_figure_writes_a_png_atomically(tmp_path) -> None:
    fig = P.figure_for(P.plot_image_grid(_images(4)))
    target = tmp_path / "sub" / "grid.png"
    P.save_figure(fig, target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["grid.png"]


def test_plots_leave_pyplot_alone() -> None:
    """No pyplot-managed figures (nothing leaks or pops up) and no pyplot/backend use in the source."""
    import ast
    from pathlib import Path

    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    for plot in IMAGE_PLOTS.values():
        plot(None)
    assert plt.get_fignums() == before
    for source in Path(P.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any("pyplot" in n or n.endswith("matplotlib.use") for n in names), (source.name, names)
