"""Epoch time and test NLL of the vbayes VAE against a minimal hand-written PyTorch loop.

Both train the MLP 784-400-20 VAE (Bernoulli decoder on dynamically binarised pixels, analytic
KL, Adam, lr 1e-3, batch 100) on the 3,500 training digits of ``mnist5k``, in this process,
from the same initial weights. vbayes uses ``Trainer`` + ``VAE`` + the ``vbayes vae`` loss; the
baseline is the loop of the PyTorch VAE example written out by hand. Both validate once per
epoch and keep the best weights; only the training part of an epoch is timed (the same as
``TrainResult.seconds_per_epoch``). The two loops run interleaved epoch by epoch (a Trainer
callback runs one hand-written epoch after each vbayes epoch; every other round the hand-written
epoch goes first), so a drifting load on a shared machine hits both alike. Each loop keeps its own
RNG stream, seeded alike, so both see the same shuffles, binarisations and noise draws. Both
final models are scored with the same importance-weighted estimator (K samples, same seed).

    python benchmarks/vae_throughput.py                 # 30 epochs, K = 500
    python benchmarks/vae_throughput.py --epochs 5      # a short check

Targets: ratio (vbayes / hand-written) <= 1.05; vbayes test NLL no worse than the loop's.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vbayes.data import fixed_binarization, load
from vbayes.models import VAE
from vbayes.train import Trainer, TrainConfig, seed_everything
from vbayes.studies.autoencoders.vae_run import TEST_BINARIZATION_SEED, AutoencoderOptions, evaluate_vae, vae_loss_fn

D, H, L = 784, 400, 20


class HandVAE(nn.Module):
    """The same network, written as in the PyTorch VAE example."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(D, H)
        self.fc2 = nn.Linear(H, 2 * L)
        self.fc3 = nn.Linear(L, H)
        self.fc4 = nn.Linear(H, D)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.fc2(F.relu(self.fc1(x))).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.fc4(F.relu(self.fc3(z))), mu, logvar


def hand_loss(model: HandVAE, x: Tensor) -> Tensor:
    """Negative ELBO per example: Bernoulli cross-entropy plus analytic KL, averaged."""
    logits, mu, logvar = model(x)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / x.shape[0]


def to_hand(vae: VAE) -> HandVAE:
    """A HandVAE holding ``vae``'s weights."""
    hand = HandVAE()
    pairs = [(hand.fc1, vae.encoder[1]), (hand.fc2, vae.latent_layer.proj),
             (hand.fc3, vae.decoder[0]), (hand.fc4, vae.decoder[2])]
    with torch.no_grad():
        for dst, src in pairs:
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    return hand


def to_vae(hand: HandVAE) -> VAE:
    """A vbayes VAE holding ``hand``'s weights (to score both models with one estimator)."""
    vae = VAE("mlp", (1, 28, 28), L, H)
    pairs = [(vae.encoder[1], hand.fc1), (vae.latent_layer.proj, hand.fc2),
             (vae.decoder[0], hand.fc3), (vae.decoder[2], hand.fc4)]
    with torch.no_grad():
        for dst, src in pairs:
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    return vae


class HandLoop:
    """The hand-written training loop, one epoch per :meth:`epoch` call.

    It keeps its own copy of torch's global RNG state, so interleaving it with the vbayes run
    leaves both with the random stream each would have alone (the same one: same seed, same
    number and order of draws), and it shuffles with the trainer's per-epoch permutation.
    """

    def __init__(self, init: VAE, x_train: Tensor, x_val: Tensor, batch: int, seed: int) -> None:
        self.model = to_hand(init)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.xtr, self.xva = x_train.flatten(1), x_val.flatten(1)
        self.batch, self.seed = batch, seed
        self.gen = torch.Generator()
        outer = torch.get_rng_state()
        torch.manual_seed(seed)
        self.rng = torch.get_rng_state()
        torch.set_rng_state(outer)
        self.best, self.best_state, self.seconds = math.inf, None, []  # type: ignore[var-annotated]

    def epoch(self) -> None:
        """Train one epoch (timed), validate, keep the best weights."""
        outer = torch.get_rng_state()
        torch.set_rng_state(self.rng)
        model, opt, batch = self.model, self.opt, self.batch
        self.gen.manual_seed(self.seed * 1_000_003 + len(self.seconds))
        perm = torch.randperm(self.xtr.shape[0], generator=self.gen)
        model.train()
        start = time.perf_counter()
        for i in range(0, self.xtr.shape[0], batch):
            x = torch.bernoulli(self.xtr[perm[i : i + batch]])
            loss = hand_loss(model, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.seconds.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad():
            val = sum(float(hand_loss(model, xb)) * len(xb) for xb in self.xva.split(batch)) / self.xva.shape[0]
        if val < self.best:
            self.best, self.best_state = val, copy.deepcopy(model.state_dict())
        self.rng = torch.get_rng_state()
        torch.set_rng_state(outer)

    def final_model(self) -> HandVAE:
        """The model with the best-on-validation weights."""
        self.model.load_state_dict(self.best_state)
        return self.model


def run_round(init: VAE, x_train: Tensor, x_val: Tensor, epochs: int, batch: int, seed: int,
              hand_first: bool) -> tuple[VAE, list[float], HandLoop]:
    """One vbayes fit with the hand loop's epochs interleaved (V H V H ... or H V H V ...).

    vbayes: ``Trainer`` + ``VAE`` + the loss of ``vbayes vae``. Returns the vbayes model, its
    per-epoch training seconds and the hand loop (its own per-epoch seconds and model).
    """
    hand = HandLoop(init, x_train, x_val, batch, seed)
    if hand_first:
        hand.epoch()

    class Interleave:
        def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
            if len(hand.seconds) < epochs:
                hand.epoch()

    model = copy.deepcopy(init)
    options = AutoencoderOptions(epochs=epochs, batch_size=batch, latent=L, hidden=H, seed=seed, progress=False)
    config = TrainConfig(epochs=epochs, batch_size=batch, lr=1e-3, seed=seed, progress=False)
    result = Trainer(model, vae_loss_fn(options), config, callbacks=[Interleave()]).fit((x_train,), (x_val,))
    return model, [row["seconds"] for row in result.history], hand


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--iw-samples", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2, help="rounds of both interleaved loops (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: stable on a shared CPU)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load("mnist5k")
    x_val = fixed_binarization(data.x_val, TEST_BINARIZATION_SEED)
    x_test = fixed_binarization(data.x_test, TEST_BINARIZATION_SEED)
    seed_everything(args.seed)
    init = VAE("mlp", (1, 28, 28), L, H)
    times: dict[str, list[float]] = {"vbayes": [], "hand": []}
    models: dict[str, nn.Module] = {}
    for r in range(args.repeats):
        vae, secs, hand = run_round(init, data.x_train, x_val, args.epochs, args.batch_size, args.seed, r % 2 == 1)
        times["vbayes"] += secs
        times["hand"] += hand.seconds
        models = {"vbayes": vae, "hand": hand.final_model()}
        order = "hand first" if r % 2 else "vbayes first"
        print(f"round {r + 1} ({order}): median epoch vbayes {statistics.median(secs):.4f} s, "
              f"hand-written {statistics.median(hand.seconds):.4f} s", flush=True)
    nll = {}
    for name, model in models.items():
        vae = model if isinstance(model, VAE) else to_vae(model)
        gen = torch.Generator().manual_seed(args.seed)
        nll[name] = evaluate_vae(vae, x_test, k=args.iw_samples, generator=gen)["nll"]
    paired = statistics.median(v / h for v, h in zip(times["vbayes"], times["hand"]))
    t_v, t_h = statistics.median(times["vbayes"]), statistics.median(times["hand"])
    print(f"threads {torch.get_num_threads()}, epochs {args.epochs}, batch {args.batch_size}, "
          f"train examples {data.x_train.shape[0]}, K {args.iw_samples}")
    fastest = min(times["vbayes"]) / min(times["hand"])
    print(f"epoch time (median)  vbayes {t_v:.4f} s   hand-written {t_h:.4f} s")
    print(f"ratio vbayes / hand-written: median of paired epochs {paired:.3f}   of medians {t_v / t_h:.3f}   "
          f"of fastest epochs {fastest:.3f}   (target <= 1.05)")
    print(f"test NLL    vbayes {nll['vbayes']:.2f}   hand-written {nll['hand']:.2f} nats/example "
          f"(difference {nll['vbayes'] - nll['hand']:+.2f})")


if __name__ == "__main__":
    main()
