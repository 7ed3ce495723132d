"""Latent-space measurements, the digit classifier and the ambiguity search, checked against
independent implementations and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vbayes.studies.autoencoders import (
    AmbiguityCounter,
    blend_changes,
    blend_smoothness,
    find_ambiguous,
    interpolate_codes,
    knn_accuracy,
    latent_moments,
    silhouette,
    train_digit_classifier,
)


def _brute_knn(zf, yf, ze, ye, k):
    correct = 0
    for z, y in zip(ze, ye):
        d = np.linalg.norm(zf - z, axis=1)
        nearest = yf[np.argsort(d, kind="stable")[:k]]
        counts = np.bincount(nearest, minlength=10)
        correct += int(np.argmax(counts) == y)
    return correct / len(ze)


@pytest.mark.parametrize("k", [1, 5])
def test_knn_accuracy_matches_brute_force(k):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 2)) * 2
    yf = rng.integers(0, 3, 200)
    ye = rng.integers(0, 3, 80)
    zf = centres[yf] + rng.normal(size=(200, 2))
    ze = centres[ye] + rng.normal(size=(80, 2))
    got = knn_accuracy(torch.tensor(zf), torch.tensor(yf), ze, ye, k=k)
    assert got == pytest.approx(_brute_knn(zf, yf, ze, ye, k))
    assert 0.4 < got <= 1.0  # separated clusters are far above the 1/3 chance level


def test_knn_accuracy_separable_and_random():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 50)
    z_sep = np.stack([y * 10.0, np.zeros_like(y, dtype=float)], 1) + rng.normal(size=(200, 2))
    assert knn_accuracy(z_sep, y, z_sep, y, k=3) == 1.0
    z_rand = rng.normal(size=(200, 2))
    # labels unrelated to the codes: accuracy near chance 1/4 (binomial SE ~ 0.03 on 200)
    y_eval = rng.integers(0, 4, 200)
    assert abs(knn_accuracy(z_rand, y, z_rand, y_eval, k=7) - 0.25) < 5 * np.sqrt(0.25 * 0.75 / 200)


def _brute_silhouette(z, y):
    d = np.linalg.norm(z[:, None] - z[None], axis=2)
    s = []
    for i in range(len(z)):
        same = (y == y[i]) & (np.arange(len(z)) != i)
        a = d[i, same].mean()
        b = min(d[i, y == c].mean() for c in np.unique(y) if c != y[i])
        s.append((b - a) / max(a, b))
    return float(np.mean(s))


def test_silhouette_matches_definition():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 15)
    z = rng.normal(size=(45, 2)) + y[:, None] * 1.5
    assert silhouette(z, y) == pytest.approx(_brute_silhouette(z, y), abs=1e-9)
    far = rng.normal(size=(45, 2)) * 0.01 + y[:, None] * 100.0
    assert silhouette(far, y) > 0.99
    with pytest.raises(ValueError, match="two classes"):
        silhouette(z, np.zeros(45, dtype=int))


def test_latent_moments():
    rng = np.random.default_rng(3)
    z = rng.normal(loc=[1.0, -2.0], scale=[0.5, 3.0], size=(1000, 2))
    mean, std = latent_moments(torch.tensor(z, dtype=torch.float32))
    np.testing.assert_allclose(mean, z.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std, z.std(0), rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        latent_moments(np.zeros(5))


def test_blend_linear_is_even_and_jump_is_detected():
    a, b = torch.zeros(1, 4, 4), torch.ones(1, 4, 4) * 0.8
    t = torch.linspace(0, 1, 9).view(-1, 1, 1, 1)
    frames = (1 - t) * a + t * b  # (9, 1, 4, 4), a straight pixel-space blend
    steps = blend_changes(frames)
    np.testing.assert_allclose(steps, np.full(8, 0.8 / 8), rtol=1e-6)
    smooth = blend_smoothness(frames)
    assert smooth["mean_change"] == pytest.approx(0.1) and smooth["max_change"] == pytest.approx(0.1)
    jump = torch.cat([a.expand(5, 1, 4, 4), b.expand(4, 1, 4, 4)])
    rough = blend_smoothness([jump, frames])
    # one blend spreads 0.8 over 8 steps, the other puts it in one step: 16 steps in all
    assert rough["max_change"] == pytest.approx(0.8)
    assert rough["mean_change"] == pytest.approx(1.6 / 16)


def test_interpolate_codes():
    za, zb = torch.tensor([0.0, 2.0]), torch.tensor([4.0, -2.0])
    path = interpolate_codes(za, zb, 5)
    assert path.shape == (5, 2)
    torch.testing.assert_close(path[0], za)
    torch.testing.assert_close(path[-1], zb)
    torch.testing.assert_close(path[2], torch.tensor([2.0, 0.0]))
    with pytest.raises(ValueError):
        interpolate_codes(za, zb, 1)


class _BrightnessJudge(nn.Module):
    """Class = round(10 * mean pixel), as near-one-hot logits: an exactly predictable judge."""

    def forward(self, x):
        c = (x.flatten(1).mean(1) * 10).round().clamp(0, 9).long()
        return nn.functional.one_hot(c, 10).float() * 50.0


def test_ambiguity_counter_and_ranking():
    judge = _BrightnessJudge()
    n = 4
    counter = AmbiguityCounter(judge, n_inputs=n)
    # 10 sampled reconstructions per input: input 0 always class 3; input 1 half 4 / half 9;
    # input 2: 7 x class 2, 3 x class 5; input 3 always class 9.
    plans = [[3] * 10, [4, 9] * 5, [2] * 7 + [5] * 3, [9] * 10]
    for s in range(10):
        recon = torch.stack([torch.full((1, 2, 2), plans[i][s] / 10) for i in range(n)])
        # deliver in two chunks, as sample_reconstructions does
        counter(torch.zeros(2, 2), recon[:2], torch.arange(0, 2))
        counter(torch.zeros(2, 2), recon[2:], torch.arange(2, 4))
    amb = counter.result()
    torch.testing.assert_close(amb.fractions.sum(1), torch.ones(n, dtype=torch.float64))
    found = find_ambiguous(amb, k=2)
    assert [f[0] for f in found] == [1, 2]
    assert set(found[0][1:3]) == {4, 9} and found[0][3] == pytest.approx(0.5)
    assert found[1][1:3] == (2, 5) and found[1][3] == pytest.approx(0.3)
    excl = torch.tensor([False, True, False, False])
    assert find_ambiguous(amb, k=1, exclude=excl)[0][0] == 2
    with pytest.raises(ValueError, match="no recorded"):
        AmbiguityCounter(judge, 3).result()
    # with labels, an input counts only when its reconstructions are partly its own digit:
    # input 2 (label 2: 70% 2, 30% 5) stays; input 1 labelled 6 (4 / 9 only) drops to 0
    labels = torch.tensor([3, 6, 2, 9])
    classes, shares = amb.pairs(labels)
    assert classes[2].tolist() == [2, 5] and shares[2].tolist() == pytest.approx([0.7, 0.3])
    assert classes[1, 0] == 6 and shares[1, 0] == 0.0
    found = find_ambiguous(amb, k=1, labels=labels)
    assert found[0][:3] == (2, 2, 5) and found[0][3] == pytest.approx(0.3)


def test_digit_classifier_learns_real_digits():
    from vbayes.data import load

    data = load("digits")
    res = train_digit_classifier(data, epochs=8, seed=0)
    # sklearn's 8x8 digits: an MLP reaches > 90% held-out accuracy; chance is 10%
    assert res.val_accuracy > 0.9 and res.test_accuracy > 0.9
    again = train_digit_classifier(data, epochs=8, seed=0)
    assert again.test_accuracy == res.test_accuracy  # repeatable under the seed
    probs = res.model.predict_proba(data.x_test[:7])
    assert probs.shape == (7, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(7))
