"""Classification metrics against hand-computed cases, torchmetrics and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torchmetrics.functional.classification import multiclass_calibration_error

from vbayes.metrics import CLASSIFICATION, classification as C
from vbayes.methods.predictive import ClassificationPrediction


def P(probs: list) -> ClassificationPrediction:  # noqa: N802
    t = torch.tensor(probs, dtype=torch.float64)
    return ClassificationPrediction(t if t.ndim == 3 else t[None])


def test_accuracy_nll_brier_hand_case() -> None:
    pred = P([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    y = torch.tensor([0, 1])
    assert C.accuracy(pred, y) == 0.5
    assert C.nll(pred, y) == pytest.approx(-(math.log(0.7) + math.log(0.3)) / 2)
    b = ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.7**2 + 0.6**2)) / 2
    assert C.brier(pred, y) == pytest.approx(b)


def test_metrics_use_the_mean_over_samples() -> None:
    pred = P([[[1.0, 0.0]], [[0.0, 1.0]]])  # mean 0.5 / 0.5
    assert C.nll(pred, torch.tensor([1])) == pytest.approx(math.log(2))
    assert C.predictive_entropy(pred)[0] == pytest.approx(math.log(2))
    assert C.mutual_information(pred)[0] == pytest.approx(math.log(2))


def test_mutual_information_zero_for_one_sample_and_entropy_hand_case() -> None:
    pred = P([[0.25, 0.25, 0.5]])
    h = -(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5))
    assert C.predictive_entropy(pred)[0] == pytest.approx(h)
    assert C.mutual_information(pred)[0] == pytest.approx(0.0, abs=1e-12)


def test_ece_matches_torchmetrics() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 4, generator=g) * 2
    probs = logits.softmax(1).double()
    y = torch.randint(0, 4, (500,), generator=g)
    ref = multiclass_calibration_error(probs.float(), y, num_classes=4, n_bins=15, norm="l1")
    assert C.ece(P(probs.tolist()), y) == pytest.approx(float(ref), abs=1e-6)


def test_ece_zero_when_perfectly_calibrated_and_hand_case() -> None:
    # 10 inputs at confidence 0.6, 6 correct: perfectly calibrated
    probs = [[0.6, 0.4]] * 10
    y = torch.tensor([0] * 6 + [1] * 4)
    assert C.ece(P(probs), y) == pytest.approx(0.0, abs=1e-12)
    # 4 inputs at 0.9 all correct -> gap 0.1 on a weight 4/14
    probs2 = probs + [[0.9, 0.1]] * 4
    y2 = torch.cat([y, torch.zeros(4, dtype=torch.long)])
    assert C.ece(P(probs2), y2) == pytest.approx(0.1 * 4 / 14)


def test_confidence_one_falls_in_the_last_bin() -> None:
    pred = P([[1.0, 0.0], [1.0, 0.0], [0.5, 0.5]])
    y = torch.tensor([0, 1, 0])
    conf, acc, count = C.reliability_curve(pred, y)
    assert count.shape == (15,) and count[-1] == 2 and count[7] == 1
    assert conf[-1] == pytest.approx(1.0) and acc[-1] == pytest.approx(0.5)
    # last bin: conf 1, acc 0.5; bin 7: conf 0.5, argmax 0 is correct -> acc 1
    assert C.ece(pred, y) == pytest.approx((2 * 0.5 + 1 * 0.5) / 3)


def test_auroc_matches_sklearn_with_ties() -> None:
    g = torch.Generator().manual_seed(1)
    s_in = torch.randint(0, 5, (60,), generator=g).double()
    s_out = torch.randint(2, 8, (40,), generator=g).double()
    labels = np.r_[np.zeros(60), np.ones(40)]
    ref = roc_auc_score(labels, np.r_[s_in.numpy(), s_out.numpy()])
    assert C.auroc_ood(s_in, s_out) == pytest.approx(ref, abs=1e-12)
    assert C.auroc_ood(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 1.0
    assert C.auroc_ood(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5


def test_table_and_errors() -> None:
    pred = P([[0.7, 0.3], [0.2, 0.8]])
    y = torch.tensor([0, 1])
    for key, (fn, _, _) in CLASSIFICATION.items():
        assert math.isfinite(fn(pred, y)), key
    with pytest.raises(ValueError, match="labels"):
        C.accuracy(pred, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="N=2"):
        C.accuracy(pred, torch.tensor([0]))
