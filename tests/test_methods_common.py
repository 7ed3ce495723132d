"""Every method: fits and predicts with the documented shapes, repeats exactly under a seed,
records (not raises) a non-finite loss, and rejects bad input with a VBayesError."""

from __future__ import annotations

import math

import pytest
import torch

from vbayes.errors import VBayesError
from vbayes.methods import METHOD_NAMES, get_method
from vbayes.methods.predictive import ClassificationPrediction, RegressionPrediction

# tiny settings so that the whole file runs in seconds
FAST: dict[str, dict] = {
    "output": {"steps": 20},
    "bbb": {"steps": 20, "n_samples": 7},
    "flipout": {"steps": 20, "n_samples": 7},
    "lrt": {"steps": 20, "n_samples": 7},
    "dropout": {"steps": 20, "n_samples": 7},
    "ensemble": {"steps": 10, "n_members": 3},
    "sgld": {"steps": 40, "n_samples": 7},
    "hmc": {"num_warmup": 10, "num_samples": 6, "n_leapfrog": 3, "num_chains": 2, "init_steps": 5},
    "mvg": {"steps": 20, "n_samples": 7},
    "bbalpha": {"steps": 20, "n_samples": 7, "elbo_samples": 20},
}
EXPECTED_S = {"output": 1, "bbb": 7, "flipout": 7, "lrt": 7, "dropout": 7, "ensemble": 3, "sgld": 7, "hmc": 12, "mvg": 7, "bbalpha": 7}
FAST["pbp"] = {"steps": 20, "n_samples": 7}
EXPECTED_S["pbp"] = 7
REGRESSION_ONLY = ("pbp",)  # classification raises a one-line VBayesError
FAST["bbh"] = {"steps": 20, "n_samples": 7, "elbo_samples": 20}
EXPECTED_S["bbh"] = 7
FAST["vd"] = {"steps": 20, "n_samples": 7}
EXPECTED_S["vd"] = 7


def _regression(n: int = 24, d: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=gen)
    return x, torch.sin(x[:, 0]) + 0.1 * torch.randn(n, generator=gen)


def _classification(n: int = 30, d: int = 2, c: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, d, generator=gen)
    return x, torch.randint(0, c, (n,), generator=gen)


def test_names_and_unknown() -> None:
    assert sorted(METHOD_NAMES) == sorted(["output", "bbb", "flipout", "lrt", "dropout", "ensemble", "sgld", "hmc",
                                           "mvg", "bbalpha", "pbp", "bbh", "vd"])
    with pytest.raises(VBayesError, match="choose one of: output, bbb"):
        get_method("laplace")
    with pytest.raises(VBayesError, match="unknown option"):
        get_method("dropout", learning_rate=0.1)
    with pytest.raises(VBayesError, match="task"):
        get_method("output", task="ranking")


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_regression_shapes_and_repeatability(name: str) -> None:
    x, y = _regression()
    xt = torch.randn(5, 2)
    p1 = get_method(name, hidden=(6,), seed=3, **FAST[name]).fit(x, y).predict(xt)
    assert isinstance(p1, RegressionPrediction)
    s = EXPECTED_S[name]
    assert p1.mu.shape == (s, 5) and p1.sigma.shape == (s, 5)
    assert torch.isfinite(p1.mu).all() and (p1.sigma > 0).all()
    if name == "output":
        assert (p1.epistemic_var == 0).all()
    p2 = get_method(name, hidden=(6,), seed=3, **FAST[name]).fit(x, y).predict(xt)
    torch.testing.assert_close(p1.mu, p2.mu, rtol=0, atol=0)
    torch.testing.assert_close(p1.sigma, p2.sigma, rtol=0, atol=0)
    p3 = get_method(name, hidden=(6,), seed=4, **FAST[name]).fit(x, y).predict(xt)
    assert not torch.equal(p1.mu, p3.mu)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_classification_shapes(name: str) -> None:
    x, y = _classification()
    if name in REGRESSION_ONLY:
        with pytest.raises(VBayesError, match="regression only"):
            get_method(name, task="classification")
        return
    m = get_method(name, task="classification", hidden=(5,), seed=0, **FAST[name]).fit(x, y)
    assert m.n_classes == 3
    p = m.predict(torch.randn(4, 2))
    assert isinstance(p, ClassificationPrediction)
    assert p.probs.shape == (EXPECTED_S[name], 4, 3)
    torch.testing.assert_close(p.probs.sum(-1), torch.ones(EXPECTED_S[name], 4))


@pytest.mark.parametrize("name", ["output", "bbb", "dropout", "ensemble", "sgld"])
def test_nan_loss_is_recorded_not_raised(name: str) -> None:
    x, y = _regression()
    x = x.clamp(-1, 1) * 3e38  # finite inputs whose activations overflow: the loss is not finite
    m = get_method(name, hidden=(4,), seed=0, **FAST[name]).fit(x, y)
    assert "error" in m.info and "non-finite" in m.info["error"]
    m.predict(torch.zeros(2, 2))  # still answers (values may be non-finite)


def test_hmc_with_overflowing_inputs_does_not_raise() -> None:
    x, y = _regression()
    m = get_method("hmc", hidden=(4,), seed=0, **FAST["hmc"]).fit(x.clamp(-1, 1) * 3e38, y)
    assert "divergences" in m.info


def test_seeded_fit_leaves_global_rng_alone() -> None:
    x, y = _regression()
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    get_method("dropout", hidden=(4,), **FAST["dropout"]).fit(x, y)
    torch.testing.assert_close(torch.rand(3), before)


@pytest.mark.parametrize(
    "x, y, match",
    [
        (torch.zeros(1, 2), torch.zeros(1), "at least 2"),
        (torch.zeros(4, 2), torch.tensor([0.0, math.nan, 1.0, 2.0]), "non-finite"),
        (torch.zeros(4), torch.zeros(4), r"\(N, D\)"),
        (torch.zeros(4, 2), torch.zeros(3), "shape"),
        (torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64), "floating"),
    ],
)
def test_bad_regression_input(x: torch.Tensor, y: torch.Tensor, match: str) -> None:
    with pytest.raises(VBayesError, match=match):
        get_method("output", **FAST["output"]).fit(x, y)


def test_bad_classification_input_and_predict_errors() -> None:
    with pytest.raises(VBayesError, match="integer"):
        get_method("output", task="classification").fit(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(VBayesError, match="out of range"):
        get_method("output", task="classification", n_classes=2).fit(torch.zeros(4, 2), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(VBayesError, match="fitted"):
        get_method("output").predict(torch.zeros(2, 2))
    x, y = _regression()
    m = get_method("output", hidden=(3,), **FAST["output"]).fit(x, y)
    with pytest.raises(VBayesError, match=r"\(M, 2\)"):
        m.predict(torch.zeros(2, 3))
