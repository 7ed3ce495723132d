"""R-hat and ESS against hand-computed cases and processes with a known effective sample size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vbayes.methods.diagnostics import classic_rhat, ess, rank_normalize, rank_rhat, split_rhat, summarize


def test_classic_rhat_hand_case() -> None:
    draws = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    # W = mean(var_ddof1) = 1, B/T = var([2, 5], ddof=1) = 4.5, var+ = 2/3 * 1 + 4.5
    assert classic_rhat(draws) == pytest.approx(math.sqrt((2 / 3 + 4.5) / 1.0))


def test_split_rhat_hand_case() -> None:
    # one chain 1,2,3,4 -> halves [1,2] and [3,4]: W = 0.5, B/T = var([1.5, 3.5]) = 2
    draws = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert split_rhat(draws) == pytest.approx(math.sqrt((0.5 * 0.5 + 2.0) / 0.5))


def test_rhat_batched_matches_scalar() -> None:
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(3, 50, 4))
    batched = rank_rhat(draws)
    assert batched.shape == (4,)
    for k in range(4):
        assert batched[k] == pytest.approx(rank_rhat(draws[:, :, k]))


def test_iid_chains_rhat_one_and_ess_n() -> None:
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(4, 2000))
    assert 0.995 < rank_rhat(draws) < 1.01
    n = draws.size
    # the ESS estimate of an iid sequence scatters by a few percent around n
    assert abs(ess(draws) / n - 1) < 0.15
    assert abs(ess(draws, rank=False, split=False) / n - 1) < 0.15


def test_ar1_ess_matches_theory() -> None:
    rng = np.random.default_rng(2)
    rho, c, t = 0.8, 4, 5000
    x = np.empty((c, t))
    x[:, 0] = rng.normal(size=c) / math.sqrt(1 - rho**2)
    for i in range(1, t):
        x[:, i] = rho * x[:, i - 1] + rng.normal(size=c)
    expected = c * t * (1 - rho) / (1 + rho)
    assert abs(ess(x) / expected - 1) < 0.2
    assert rank_rhat(x) < 1.02


def test_shifted_chain_detected() -> None:
    rng = np.random.default_rng(3)
    draws = rng.normal(size=(4, 500))
    draws[0] += 3.0
    assert rank_rhat(draws) > 1.3
    assert classic_rhat(draws) > 1.3
    # a chain with a different spread but the same centre: only the folded (tail) R-hat sees it
    spread = rng.normal(size=(4, 500))
    spread[0] *= 5.0
    assert rank_rhat(spread) > 1.1


def test_drifting_chain_caught_by_split() -> None:
    t = np.linspace(0, 1, 1000)
    draws = np.stack([t + 0.01 * np.sin(50 * t), t + 0.01 * np.cos(50 * t)])
    assert classic_rhat(draws) < 1.01  # both chains drift identically: classic R-hat is blind
    assert split_rhat(draws) > 2.0


def test_rank_normalize_is_normal_quantiles() -> None:
    draws = np.arange(12.0).reshape(2, 6)
    z = rank_normalize(draws)
    assert z.shape == (2, 6)
    assert np.all(np.diff(z.reshape(-1)) > 0)
    assert z.mean() == pytest.approx(0.0, abs=1e-12)


def test_summarize_and_bad_shape() -> None:
    rng = np.random.default_rng(4)
    out = summarize(rng.normal(size=(2, 100, 3)))
    assert set(out) == {"rhat_max", "ess_min"}
    with pytest.raises(ValueError):
        classic_rhat(np.zeros(5))


def _ar1(seed: int, c: int, t: int, rho: float) -> np.ndarray:
    """``(c, t)`` AR(1) chains ``x_i = rho * x_{i-1} + N(0, 1)`` started in their stationary law."""
    rng = np.random.default_rng(seed)
    x = np.empty((c, t))
    x[:, 0] = rng.normal(size=c) / np.sqrt(1 - rho**2)
    for i in range(1, t):
        x[:, i] = rho * x[:, i - 1] + rng.normal(size=c)
    return x


# (seed, chains, draws, rho), arviz bulk ESS, arviz mean ESS, arviz rank R-hat. The cases cover:
# truncation at a pair whose even lag is negative (rho 0.5) or positive, so that Stan's extra
# "+ rho_hat_{2M}" term counts (0.9; 0.7 with an odd length; the antithetic -0.3), the
# 1 / log10(n) guard on tau (-0.6), and a short chain whose pairs stay positive up to the end of
# Stan's loop (0.99, 2 x 30).
_ARVIZ_REFERENCE = [
    ((0, 4, 500, 0.5), 587.6772672905611, 587.7478602972775, 1.0050255400623245),
    ((10, 4, 500, 0.9), 80.42265271077325, 81.44125614275553, 1.0518050130631773),
    ((9, 2, 101, 0.7), 33.6909470541357, 34.66924373456386, 1.1132548565422071),
    ((16, 4, 500, -0.3), 4956.700711972427, 4944.268308747836, 1.0008307336955997),
    ((4, 4, 500, -0.6), 6602.059991327962, 6602.059991327962, 1.005179741842961),
    ((5, 2, 30, 0.99), 3.3398174556189804, 3.150401284066538, 1.991430641589571),
]


@pytest.mark.parametrize("case,bulk,mean,rhat", _ARVIZ_REFERENCE)
def test_matches_arviz(case: tuple[int, int, int, float], bulk: float, mean: float, rhat: float) -> None:
    """Bulk ESS, mean ESS and rank-normalised split R-hat equal arviz's to rounding.

    The reference numbers were printed by arviz 0.23.4 (numpy 2.4.6, scipy 1.17.1; arviz is not a
    dependency of vbayes) with, for each case, ``x = _ar1(*case)`` (the same function as here) and::

        import arviz as az
        print(float(az.ess(x, method="bulk")), float(az.ess(x, method="mean")),
              float(az.rhat(x, method="rank")))
    """
    x = _ar1(*case)
    assert ess(x) == pytest.approx(bulk, rel=1e-10)
    assert ess(x, rank=False) == pytest.approx(mean, rel=1e-10)  # arviz "mean": split, no ranks
    assert rank_rhat(x) == pytest.approx(rhat, rel=1e-10)


def test_batched_ess_matches_arviz() -> None:
    """The ``(C, T, K)`` path gives each quantity's arviz value (the truncation differs per k)."""
    same = [r for r in _ARVIZ_REFERENCE if r[0][1:3] == (4, 500)]
    x = np.stack([_ar1(*r[0]) for r in same], axis=-1)
    np.testing.assert_allclose(ess(x), [r[1] for r in same], rtol=1e-10)
    np.testing.assert_allclose(ess(x, rank=False), [r[2] for r in same], rtol=1e-10)
    np.testing.assert_allclose(rank_rhat(x), [r[3] for r in same], rtol=1e-10)
