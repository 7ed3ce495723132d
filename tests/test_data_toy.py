"""Toy data (gap, cubic, moons) and OOD image sets: shapes, seeds, the stated distributions."""

from __future__ import annotations

import math

import pytest
import torch

import vbayes.data as vdata
from vbayes.data.ood import inverted, ood_sets, rotated
from vbayes.data.tabular import RegressionData, Standardizer
from vbayes.data.toy import GAP_CLUSTERS, gap_function, load_cubic, load_moons, load_toy_gap
from vbayes.errors import DataError


def test_toy_gap_has_two_clusters_and_nothing_between() -> None:
    d = load_toy_gap(seed=0)
    x = d.x_train[:, 0]
    (a0, a1), (b0, b1) = GAP_CLUSTERS
    assert d.x_train.shape == (40, 1) and d.y_train.shape == (40,)
    assert bool((((x >= a0) & (x <= a1)) | ((x >= b0) & (x <= b1))).all())
    assert int((x < 0).sum()) == 20
    resid = d.y_train - gap_function(x)
    # 40 residuals of N(0, 0.1^2): sample std within 5 standard errors (se ~ 0.1 / sqrt(2 * 40))
    assert abs(float(resid.std()) - 0.1) < 5 * 0.1 / math.sqrt(80)
    span = float(x.max() - x.min())
    assert d.meta["extrapolation"] == pytest.approx([float(x.min()) - span / 2, float(x.max()) + span / 2])
    assert d.meta["gap_middle"] == 0.0
    assert float(d.x_grid.min()) < d.meta["extrapolation"][0] and float(d.x_grid.max()) > d.meta["extrapolation"][1]


def test_toy_data_repeat_under_a_seed_and_differ_across_seeds() -> None:
    a, b, c = load_toy_gap(seed=3), load_toy_gap(seed=3), load_toy_gap(seed=4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert torch.equal(load_moons(seed=1).x_train, load_moons(seed=1).x_train)


def test_cubic_is_the_hernandez_lobato_adams_toy() -> None:
    d = load_cubic(seed=0, n_test=2000)
    assert d.x_train.shape == (20, 1)
    assert float(d.x_train.abs().max()) <= 4.0
    resid = d.y_test - d.x_test[:, 0] ** 3
    # std of 2000 N(0, 9) residuals: se of the std ~ 3 / sqrt(4000)
    assert abs(float(resid.std()) - 3.0) < 5 * 3.0 / math.sqrt(4000)
    assert abs(float(resid.mean())) < 5 * 3.0 / math.sqrt(2000)


def test_moons_and_ood_far_from_training_points() -> None:
    d = load_moons(seed=0)
    assert d.x_train.shape == (200, 2) and d.n_classes == 2
    assert set(d.y_train.tolist()) == {0, 1}
    far = d.x_ood["far"]
    assert far.shape == (500, 2)
    assert float(torch.cdist(far, d.x_train).min()) >= 1.0


def test_registry_knows_the_new_sets() -> None:
    assert {"toy-gap", "cubic", "moons", "uci"} <= set(vdata.names())
    assert isinstance(vdata.load("cubic", seed=1), RegressionData)


def test_too_few_points_and_nonfinite_targets_are_data_errors() -> None:
    with pytest.raises(DataError, match="at least 2"):
        load_cubic(n_train=1)
    d = load_cubic()
    d.y_train[3] = float("nan")
    with pytest.raises(DataError, match="non-finite"):
        d.validate()


def test_ood_images() -> None:
    x = torch.rand(5, 1, 8, 8)
    sets = ood_sets(x, seed=0)
    assert set(sets) == {"noise", "inverted", "rotated"}
    assert torch.equal(inverted(x), 1 - x)
    assert torch.equal(rotated(rotated(rotated(rotated(x)))), x)
    assert torch.equal(rotated(x)[0, 0, 0, :], x[0, 0, :, -1])  # first row <- last column
    assert torch.equal(sets["noise"], ood_sets(x, seed=0)["noise"])
    assert float(sets["noise"].min()) >= 0 and float(sets["noise"].max()) <= 1


def test_standardizer_round_trip_and_constant_columns() -> None:
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    s = Standardizer.fit(x)
    assert torch.allclose(s.transform(x), torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
    assert torch.allclose(s.inverse(s.transform(x)).float(), x)


def test_digits_as_flat_vectors_with_ood_sets() -> None:
    from vbayes.data.ood import load_image_classification

    d = load_image_classification("digits", seed=0)
    assert d.x_train.shape[1] == 64 and d.image_shape == (1, 8, 8) and d.n_classes == 10
    assert set(d.x_ood) == {"noise", "inverted", "rotated"}
    for x in d.x_ood.values():
        assert x.shape == d.x_test.shape
    assert torch.equal(d.x_ood["inverted"], 1 - d.x_test)
