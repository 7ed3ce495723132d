# %% [markdown]
# # Three places to put a distribution, and the variance of the gradient
#
# The lecture lists three variational options for a network:
#
# 1. **a variational output**: a deterministic network whose output is a distribution
#    (here a Gaussian head: mean and standard deviation per input). It models noise in the
#    data — *aleatoric* uncertainty — but has no idea where it has seen no data.
# 2. **variational weights**: a distribution q(w) over every weight, trained with the ELBO
#    `E_q[log p(y|x,w)] - KL(q(w) || p(w)) / N`. The spread of predictions over weight samples is
#    *epistemic* uncertainty. The KL is *global*: paid once per data set.
# 3. **stochastic hidden units**: Gaussian units z ~ q(z|h) inside the network (the VAE's
#    trick, here in a regressor). The KL is *local*: one per example, averaged over the batch.
#
# Then the practical question behind options 2 and 3: the ELBO's gradient is estimated by
# sampling, and its variance decides how fast training is. We measure it for the three
# estimators of weight noise: **reparam** (one weight sample per mini-batch), **flipout** and
# **LRT** (independent noise per example).

# %%
import os

import torch
import torch.nn as nn
from IPython.display import Image, display
from matplotlib.figure import Figure

import vbayes
from vbayes.layers import LinearFlipout, LinearLRT, LinearReparam
from vbayes.methods import get_method

QUICK = os.environ.get("VBAYES_QUICK") == "1"  # the test suite sets it: small settings
torch.manual_seed(0)


def show(fig):
    """Display a matplotlib figure (vbayes.plots draws without pyplot)."""
    display(Image(vbayes.plots.figure_to_png(fig)))


# %% [markdown]
# ## The three options on the toy regression with a gap

# %%
data = vbayes.data.load("toy-gap", seed=0)
x_mu, x_sd = data.x_train.mean(0), data.x_train.std(0)
y_mu, y_sd = data.y_train.mean(), data.y_train.std()
x_train, y_train = (data.x_train - x_mu) / x_sd, (data.y_train - y_mu) / y_sd
x_grid = (data.x_grid - x_mu) / x_sd
STEPS = 150 if QUICK else 3000

output = get_method("output", hidden=(50,), seed=0, epochs=STEPS).fit(x_train, y_train)     # option 1
weights = get_method("lrt", hidden=(50,), seed=0, epochs=STEPS).fit(x_train, y_train)       # option 2

# %% [markdown]
# Option 3 is written out by hand: a `StochasticGaussian` layer of 4 units between two
# deterministic layers and a `GaussianHead`. `vbayes.elbo_loss` adds the layer's local KL
# (its batch mean), so the same call serves options 2 and 3.

# %%
torch.manual_seed(0)
hidden_units = nn.Sequential(nn.Linear(1, 50), nn.ReLU(), vbayes.StochasticGaussian(50, 4),
                             nn.Linear(4, 50), nn.ReLU(), vbayes.GaussianHead(50, 1))
opt = torch.optim.Adam(hidden_units.parameters(), lr=3e-3)
for step in range(STEPS):
    nll = -hidden_units(x_train).log_prob(y_train[:, None]).squeeze(1)  # (N,) nats
    loss = vbayes.elbo_loss(nll, hidden_units, dataset_size=len(x_train))
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"stochastic hidden units: final negative ELBO {loss.item():.3f} nats per point, "
      f"local KL {vbayes.local_kl(hidden_units).item():.3f}")

with torch.no_grad():  # 200 draws of the hidden units: a mixture of Gaussians per input
    draws = [hidden_units(x_grid) for _ in range(200)]
    mu = torch.stack([d.loc[:, 0] for d in draws])
    sigma = torch.stack([d.scale[:, 0] for d in draws])
bands = {
    "1. variational output": output.predict(x_grid),
    "2. variational weights (LRT)": weights.predict(x_grid),
}
units_mean, units_total = mu.mean(0), (sigma.pow(2).mean(0) + mu.var(0)).sqrt()

fig = Figure(figsize=(15, 4), layout="constrained")
axes = fig.subplots(1, 3)
xs = data.x_grid[:, 0]
for ax, (title, p) in zip(axes, bands.items()):
    vbayes.plots.plot_predictive_bands(data.x_train[:, 0], data.y_train, xs, p.mean * y_sd + y_mu,
                                       p.total_var.sqrt() * y_sd, p.epistemic_var.sqrt() * y_sd,
                                       ax=ax, title=title, truth=torch.sin(xs) + 0.3 * xs)
# for hidden units the spread over z is part of p(y|x): it is drawn as total, with no epistemic band
vbayes.plots.plot_predictive_bands(data.x_train[:, 0], data.y_train, xs, units_mean * y_sd + y_mu,
                                   units_total * y_sd, torch.zeros_like(xs), ax=axes[2],
                                   title="3. stochastic hidden units", truth=torch.sin(xs) + 0.3 * xs)
for ax in axes:
    ax.set_ylim(-4, 4)
show(fig)

# %% [markdown]
# Only the variational weights (option 2) carry epistemic uncertainty, the dark band that
# grows beyond the data. Option 1 describes the noise around a single function. Option 3's
# spread may also grow away from the data, but it is part of p(y|x): the model claims that the
# *data* are noisy there, a claim that more data would not remove — it is not a posterior over
# functions.
#
# ## The gradient-variance experiment
#
# A 784-100-10 classifier of Bayesian layers on the embedded MNIST digits (`mnist5k`). We fit
# an LRT posterior briefly (so that the weight standard deviations grow to a realistic size),
# copy the very same posterior (mu, rho) into a Reparam, a Flipout and an LRT network, and for
# each mini-batch size B draw the gradient of the negative ELBO with respect to the weight
# means twice on the same mini-batch with independent noise. Half the mean squared difference
# of the two is the estimator's own variance (over the posterior noise), averaged over weights.

# %%
digits = vbayes.data.load("mnist5k")
x, y = digits.x_train.flatten(1), digits.y_train
if QUICK:
    x, y = x[:1000], y[:1000]
N, HIDDEN = len(x), 100


def mlp(layer):
    return nn.Sequential(layer(784, HIDDEN, posterior_std_init=0.05), nn.ReLU(),
                         layer(HIDDEN, 10, posterior_std_init=0.05))


def negative_elbo(net, xb, yb):
    nll = nn.functional.cross_entropy(net(xb), yb, reduction="none")
    return vbayes.elbo_loss(nll, net, dataset_size=N)


torch.manual_seed(0)
fitted = mlp(LinearLRT)
opt = torch.optim.Adam(fitted.parameters(), lr=1e-3)
for epoch in range(1 if QUICK else 3):
    for idx in torch.randperm(N).split(128):
        opt.zero_grad()
        negative_elbo(fitted, x[idx], y[idx]).backward()
        opt.step()


def noise_variance(net, batch_size, draws):
    """E_batch Var_eps of d(-ELBO)/d(weight_mu), averaged over all weight means."""
    means = [p for n, p in net.named_parameters() if n.endswith("weight_mu")]
    total = 0.0
    for _ in range(draws):
        idx = torch.randperm(N)[:batch_size]
        g = []
        for _ in range(2):
            grads = torch.autograd.grad(negative_elbo(net, x[idx], y[idx]), means)
            g.append(torch.cat([t.flatten() for t in grads]))
        total += ((g[0] - g[1]) ** 2 / 2).mean().item()
    return total / draws


batch_sizes = [1, 16, 256] if QUICK else [1, 4, 16, 64, 256, 1024]
DRAWS = 3 if QUICK else 24
variance = {}
for name, layer in {"reparam": LinearReparam, "flipout": LinearFlipout, "lrt": LinearLRT}.items():
    net = mlp(layer)
    net.load_state_dict(fitted.state_dict())  # the same posterior for the three estimators
    variance[name] = [noise_variance(net, b, DRAWS) for b in batch_sizes]
    print(f"{name:8s} " + "  ".join(f"B={b}: {v:.2e}" for b, v in zip(batch_sizes, variance[name])))

# %% [markdown]
# ## The lecture's figure
#
# With one weight sample shared by the whole mini-batch (reparam), the noise of that sample
# does not average out: the variance flattens as B grows. Flipout and LRT give every example its
# own noise, so their variance keeps falling like 1/B (the dashed guide) — the reason they train
# faster at the same cost (Kingma et al. 2015; Wen et al. 2018). `vbayes bench gradvar` runs the
# larger version of this measurement (784-400-400-10, more draws, and the total variance over
# random mini-batches too).

# %%
fig = Figure(figsize=(6, 4.5), layout="constrained")
ax = fig.subplots()
for name, values in variance.items():
    ax.loglog(batch_sizes, values, "o-", label=name)
first = max(v[0] for v in variance.values())
ax.loglog(batch_sizes, [first / b for b in batch_sizes], "k--", lw=1, label="1 / B")
ax.set(xlabel="mini-batch size B", ylabel="Var[dL/d mu] per weight (posterior noise)",
       title="gradient variance of the ELBO estimators")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
show(fig)
