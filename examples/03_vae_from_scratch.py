# %% [markdown]
# # A variational auto-encoder from scratch on MNIST
#
# The lecture's central exercise. An auto-encoder squeezes an image x through a small code z
# and back. A **VAE** makes the code a distribution: the encoder outputs q(z|x) = N(mu(x),
# sigma(x)^2), the decoder a distribution p(x|z) over pixels (independent Bernoullis), and the
# prior is p(z) = N(0, I). Training maximises the **ELBO** per image,
#
#     ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))  <=  log p(x),
#
# estimated with one reparameterised sample z = mu + sigma * eps. We train a VAE and a plain
# auto-encoder (AE) with the same networks (MLP 784-400-2) on the 5,000 MNIST digits that ship
# with vbayes, then look at what the KL term buys: a latent space that is filled evenly, so
# that decoding any point of it — a grid (the *manifold*) or a straight line between two digits
# (*blending*) — gives a plausible digit.
#
# The full 60,000 digits: `vbayes data download mnist --to DIR`, then
# `vbayes.data.load("mnist", data_dir=DIR)` instead of `"mnist5k"` below.

# %%
import os
import time

import torch
from IPython.display import Image, display
from matplotlib.figure import Figure

import vbayes
from vbayes.data import fixed_binarization
from vbayes.models import AE, VAE

QUICK = os.environ.get("VBAYES_QUICK") == "1"  # the test suite sets it: small settings
torch.manual_seed(0)
torch.set_num_threads(min(2, os.cpu_count() or 1))


def show(fig):
    """Display a matplotlib figure (vbayes.plots draws without pyplot)."""
    display(Image(vbayes.plots.figure_to_png(fig)))


data = vbayes.data.load("mnist5k")  # 3,500 / 500 / 1,000 real digits, pixels in [0, 1]
x_val, x_test = fixed_binarization(data.x_val), fixed_binarization(data.x_test)
print(f"train {tuple(data.x_train.shape)}, validation {len(x_val)}, test {len(x_test)}")

# %% [markdown]
# ## The training loop
#
# Each epoch binarises the training images afresh (`torch.bernoulli`, so the Bernoulli
# likelihood sees real 0/1 pixels), and `model.loss(x)` returns the negative ELBO in nats per
# image (the AE: its reconstruction NLL). The same loop trains both models.

# %%
EPOCHS = 1 if QUICK else 30
x_train = data.x_train[:1000] if QUICK else data.x_train  # quick: a subset


def train(model, epochs=EPOCHS, batch_size=100, lr=1e-3):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for x in x_train[torch.randperm(len(x_train))].split(batch_size):
            loss = model.loss(torch.bernoulli(x))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            val = model.loss(x_val).item()
        history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses), "val_loss": val})
    return history


t0 = time.perf_counter()
vae = VAE(arch="mlp", image_shape=data.image_shape, latent=2, hidden=400, likelihood="bernoulli")
vae_history = train(vae)
ae = AE(arch="mlp", image_shape=data.image_shape, latent=2, hidden=400, likelihood="bernoulli")
ae_history = train(ae)
print(f"trained both in {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# ## The ELBO and the log-likelihood
#
# The ELBO is a lower bound; the importance-weighted estimate with K samples of q(z|x) is a
# tighter one (it approaches log p(x) as K grows). Both in nats per test image.

# %%
K = 10 if QUICK else 200
with torch.no_grad():
    nll, kl = vae.loss_terms(x_test)
    elbo = -(nll + kl).mean().item()
    iwae = vae.iwae_log_likelihood(x_test, k=K).mean().item()
    ae_nll = ae.reconstruction_nll(x_test).mean().item()
print(f"VAE test ELBO {elbo:.1f} = reconstruction {-nll.mean():.1f} - KL {kl.mean():.1f} nats")
print(f"VAE test log p(x) >= {iwae:.1f} nats (importance weighted, K={K})")
print(f"AE test reconstruction NLL {ae_nll:.1f} nats (no KL, no bound on log p(x))")

fig = Figure(figsize=(11, 3.5), layout="constrained")
axes = fig.subplots(1, 2)
vbayes.plots.plot_training_curves(vae_history, ax=axes[0], title="VAE: negative ELBO")
vbayes.plots.plot_training_curves(ae_history, ax=axes[1], title="AE: reconstruction NLL")
show(fig)

# %% [markdown]
# ## Reconstructions and samples from the prior
#
# Only the VAE has a generative model: decode z ~ N(0, I).

# %%
with torch.no_grad():
    shown = x_test[:10]
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    axes = fig.subplots(3, 1)
    vbayes.plots.plot_reconstructions(shown, vae.reconstruct(shown), ax=axes[0], title="VAE reconstructions")
    vbayes.plots.plot_reconstructions(shown, torch.sigmoid(ae(shown)), ax=axes[1], title="AE reconstructions")
    vbayes.plots.plot_samples(vae.sample(10, generator=torch.Generator().manual_seed(0)), ax=axes[2])
show(fig)

# %% [markdown]
# ## The lecture's figure: latent maps, the manifold, blending
#
# * **Latent map**: the codes (encoder means) of the test digits, coloured by label. The KL
#   pulls the VAE's codes towards N(0, I): a compact cloud around the origin with spread near
#   1; the AE's codes go wherever the reconstruction wants them, with holes between classes.
# * **Manifold**: decode a grid of N(0, I) quantiles. For the VAE every point decodes to a
#   digit-like image that changes smoothly.
# * **Blending**: decode the straight line between the codes of two test digits.

# %%
with torch.no_grad():
    z_vae, _ = vae.encode(x_test)
    z_ae = ae.encode(x_test)
    a, b = int((data.y_test == 1).nonzero()[0]), int((data.y_test == 7).nonzero()[0])
    steps = torch.linspace(0, 1, 10)[:, None]
    blend_vae = vae.decode_mean(torch.lerp(z_vae[a], z_vae[b], steps))
    blend_ae = ae.decode_mean(torch.lerp(z_ae[a], z_ae[b], steps))
print(f"VAE codes: mean {z_vae.mean(0).tolist()}, std {z_vae.std(0).tolist()}")
print(f"AE codes:  mean {z_ae.mean(0).tolist()}, std {z_ae.std(0).tolist()}")

fig = Figure(figsize=(15, 9), layout="constrained")
grid = fig.subplot_mosaic([["ae", "vae", "manifold"], ["blend_ae", "blend_ae", "blend_ae"],
                           ["blend_vae", "blend_vae", "blend_vae"]], height_ratios=[4, 1, 1])
vbayes.plots.plot_latent_map(z_ae, data.y_test, ax=grid["ae"], title="AE latent map")
vbayes.plots.plot_latent_map(z_vae, data.y_test, ax=grid["vae"], title="VAE latent map")
vbayes.plots.plot_manifold(vae.decode_mean, n=15, ax=grid["manifold"], title="VAE manifold")
vbayes.plots.plot_blending(blend_ae, ax=grid["blend_ae"], title="AE: blending a 1 into a 7")
vbayes.plots.plot_blending(blend_vae, ax=grid["blend_vae"], title="VAE: blending a 1 into a 7")
show(fig)
