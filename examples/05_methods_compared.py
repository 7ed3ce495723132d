# %% [markdown]
# # Inference methods compared on a gap — and why calibration is not enough
#
# The lecture's last comparison: eight ways to get an uncertainty out of a small network, on a
# 1-D regression whose training inputs leave a **gap** in the middle. A good posterior should be
# *more* uncertain in the gap and beyond the data than on it. We fit every method of
# `vbayes.methods.METHOD_NAMES` with the same network (one hidden layer of 50 units) and the
# same standardised data, then look at three things:
#
# 1. the usual test metrics (RMSE, NLL, 95% coverage),
# 2. the epistemic uncertainty in the gap and beyond the data, relative to that on the data,
# 3. the calibration curve — and the caveat: a method can look perfectly calibrated on test
#    points drawn from the training clusters while knowing nothing about the gap.
#
# `VBAYES_QUICK=1` (set by the test suite) shrinks the training budgets; the figures then look
# rougher but the notebook runs the same code.

# %%
import os
import time

import torch
from IPython.display import Image, display
from matplotlib.figure import Figure

import vbayes
from vbayes.methods import METHOD_NAMES, get_method

QUICK = os.environ.get("VBAYES_QUICK") == "1"
torch.manual_seed(0)


def show(fig):
    """Display a matplotlib figure (vbayes.plots draws without pyplot)."""
    display(Image(vbayes.plots.figure_to_png(fig)))


# %% [markdown]
# ## The data
#
# 40 points on two clusters, `y = sin(x) + 0.3 x + N(0, 0.1^2)`; test points come from the same
# clusters. Inputs and targets are standardised with the training statistics, as every method
# expects.

# %%
data = vbayes.data.load("toy-gap", seed=0)
x_mu, x_sd = data.x_train.mean(0), data.x_train.std(0)
y_mu, y_sd = data.y_train.mean(), data.y_train.std()


def sx(x):
    return (x - x_mu) / x_sd


def sy(y):
    return (y - y_mu) / y_sd


x_train, y_train = sx(data.x_train), sy(data.y_train)
x_test, y_test = sx(data.x_test), sy(data.y_test)
x_grid = sx(data.x_grid)
probe = sx(torch.tensor([[data.meta["gap_middle"]], *[[v] for v in data.meta["extrapolation"]]]))
print(f"{len(x_train)} training points, {len(x_test)} test points, methods: {', '.join(METHOD_NAMES)}")

# %% [markdown]
# ## Fit every method
#
# One call each: `get_method(name, hidden=(50,), seed=0, ...)`, `fit(x, y)`, `predict(x)`. A
# prediction holds `S` posterior samples of a Gaussian per input (`mu`, `sigma`, shape `(S, N)`);
# its `epistemic_var` is the variance of the means across samples, its `aleatoric_var` the
# expected noise. HMC's budget is cut down from the defaults so that the notebook stays short.

# %%
EPOCHS = 150 if QUICK else 1500  # full-batch steps of the gradient-based methods
options = {
    "hmc": dict(num_chains=2 if QUICK else 4, num_warmup=40 if QUICK else 250,
                num_samples=40 if QUICK else 250, n_leapfrog=16 if QUICK else 64, init_steps=100),
    "sgld": dict(n_samples=20 if QUICK else 100),
    "ensemble": dict(n_members=3 if QUICK else 5),
}
preds, fit_seconds = {}, {}
epochs = {"hmc": None, "pbp": 40 if QUICK else 400}  # HMC counts iterations; PBP's epochs are ADF passes
for name in METHOD_NAMES:
    method = get_method(name, hidden=(50,), seed=0, epochs=epochs.get(name, EPOCHS), **options.get(name, {}))
    t0 = time.perf_counter()
    method.fit(x_train, y_train)
    fit_seconds[name] = time.perf_counter() - t0
    preds[name] = {"test": method.predict(x_test), "grid": method.predict(x_grid),
                   "train": method.predict(x_train), "probe": method.predict(probe)}
    if name == "hmc":
        hmc_info = method.info
    print(f"{name:9s} fitted in {fit_seconds[name]:5.1f} s")
print(f"HMC: R-hat {hmc_info['rhat_max']:.3f}, min ESS {hmc_info['ess_min']:.0f}, "
      f"divergences {hmc_info['divergences']}")

# %% [markdown]
# ## Metrics: accuracy, coverage, and uncertainty where there is no data
#
# `vbayes.metrics` has one signature for every regression metric: `f(prediction, y)`.
# `gap_ratio` is the epistemic standard deviation in the middle of the gap divided by its mean
# at the training inputs; `beyond_ratio` the same half the data's span past its edges.

# %%
m = vbayes.metrics
rows = []
for name, p in preds.items():
    on_data = p["train"].epistemic_var.sqrt().mean()
    epi = p["probe"].epistemic_var.sqrt()
    gap = float(epi[0] / on_data) if on_data > 0 else float("nan")
    beyond = float(epi[1:].mean() / on_data) if on_data > 0 else float("nan")
    rows.append((name, m.rmse(p["test"], y_test), m.REGRESSION["nll"].function(p["test"], y_test),
                 m.picp(p["test"], y_test, 0.95), gap, beyond))
print(f"{'method':9s} {'rmse':>7s} {'nll':>7s} {'picp95':>7s} {'gap':>6s} {'beyond':>7s}")
for name, rmse, nll, picp, gap, beyond in rows:
    print(f"{name:9s} {rmse:7.3f} {nll:7.3f} {picp:7.2f} {gap:6.2f} {beyond:7.2f}")

# %% [markdown]
# Read the table with the lecture in mind:
#
# * **output** (a network with a Gaussian output, no posterior) has no epistemic part at all —
#   its gap and beyond ratios are undefined (nan) — and its coverage is below 95%.
# * the **mean-field variational** methods (bbb, flipout, lrt) grow their uncertainty beyond the
#   data but hardly in the gap: the "in-between" failure of Foong et al. (2019). With the full
#   ELBO on 40 points they also tend to under-fit, explaining the data as noise.
# * **HMC** is the reference: the largest gap and beyond ratios.
#
# ## The calibration caveat
#
# The calibration curve compares the expected with the observed proportion of test targets in
# central prediction intervals. The test points lie in the training clusters, so this curve
# says nothing about the gap: an under-fitting variational method, whose noise is too wide, is
# *over*-covering (its curve lies above the diagonal) and a calibration summary alone would call
# it safe, while the bands below show it is no more uncertain in the gap than on the data.

# %%
fig = Figure(figsize=(16, 13), layout="constrained")
axes = fig.subplots(4, 4)  # one panel per method, then the calibration curves and the gap ratios
xs = data.x_grid[:, 0]
for ax, name in zip(axes.flat, METHOD_NAMES):
    g = preds[name]["grid"]
    vbayes.plots.plot_predictive_bands(
        data.x_train[:, 0], data.y_train, xs, g.mean * y_sd + y_mu, g.total_var.sqrt() * y_sd,
        g.epistemic_var.sqrt() * y_sd, ax=ax, title=f"{name} ({fit_seconds[name]:.0f} s)",
        truth=torch.sin(xs) + 0.3 * xs)
    ax.set_ylim(-4, 4)
curves = {name: m.calibration_curve(preds[name]["test"], y_test) for name in METHOD_NAMES}
vbayes.plots.plot_calibration_curve(curves, ax=axes.flat[len(METHOD_NAMES)], title="calibration on the test clusters")
gap_ax = axes.flat[len(METHOD_NAMES) + 1]
for ax in axes.flat[len(METHOD_NAMES) + 2:]:
    ax.set_axis_off()
names = [r[0] for r in rows]
gap_ax.bar(range(len(rows)), [r[4] if r[4] == r[4] else 0.0 for r in rows], color="tab:orange")
gap_ax.axhline(1.0, color="grey", lw=0.8, ls=":")
gap_ax.set_xticks(range(len(rows)), names, rotation=45)
gap_ax.set(ylabel="epistemic std in the gap / on the data", title="uncertainty in the gap")
show(fig)
