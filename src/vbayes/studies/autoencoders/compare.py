"""The AE / VAE / Bayesian-AE comparison of the lecture, as one library call.

:func:`compare_autoencoders` trains the three models with matched networks on the same data,
measures their latent spaces the same way (kNN accuracy and silhouette of the digit label,
location and spread of the codes, smoothness of blending, reconstruction NLL), finds ambiguous
test inputs automatically (a digit classifier judges each sampled reconstruction; an input is
ambiguous when its reconstructions are judged partly its own digit and partly another) and, given a
:class:`~vbayes.report.Report`, adds the side-by-side figures and tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vbayes.studies.autoencoders.ambiguous import Ambiguity, AmbiguityCounter, find_ambiguous
from vbayes.studies.autoencoders.classifier import train_digit_classifier
from vbayes.studies.autoencoders.fit import eval_targets, fit_bae
from vbayes.studies.autoencoders.views import AutoencoderView, blend_pairs, measure_latent_space, view_of
from vbayes.errors import DataError, VBayesError
from vbayes.models.bae import BayesianAE, ReconstructionSamples, sample_reconstructions
from vbayes.train import TrainConfig

MODEL_KEYS = ("ae", "vae", "bae")
BLEND_CLASS_PAIRS = [(4, 9), (2, 3), (1, 7), (3, 8), (0, 6)]
AMBIGUOUS_SHARE = 0.2
"""An input counts as ambiguous when at least this share of its sampled reconstructions is judged
to be its own digit and at least this share one other digit."""


@dataclass
class CompareConfig:
    """Settings of :func:`compare_autoencoders` (every model gets the same networks and optimiser).

    ``estimator``: sampling of the Bayesian AE's layers; ``iw_samples``: K of the VAE's
    importance-weighted test NLL; ``samples``: S per shown input (reconstruction mean/std, code
    clouds); ``search_samples``: S per test input in the ambiguity search; ``search_inputs``:
    search only the first this many test inputs (``None``: all); ``classifier_epochs``: training
    of the digit classifier that judges reconstructions; ``show``: inputs in the reconstruction
    figures; ``clouds``: inputs whose code clouds are drawn; ``blend_steps``: frames per blend.
    """

    latent: int = 2
    arch: str = "mlp"
    hidden: int = 400
    epochs: int = 30
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    estimator: str = "flipout"
    iw_samples: int = 100
    samples: int = 100
    search_samples: int = 30
    search_inputs: int | None = None
    classifier_epochs: int = 15
    show: int = 10
    clouds: int = 4
    blend_steps: int = 12
    device: str = "cpu"
    progress: bool = False

    def check(self) -> None:
        """Raise :class:`~vbayes.errors.VBayesError` naming the first invalid setting."""
        positive = ("latent", "hidden", "epochs", "batch_size", "samples", "search_samples",
                    "classifier_epochs", "show", "clouds", "iw_samples")  # fmt: skip
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise VBayesError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.search_inputs is not None and self.search_inputs < 2:
            raise VBayesError(f"search-inputs must be >= 2, got {self.search_inputs}")
        if self.blend_steps < 2:
            raise VBayesError(f"blend-steps must be >= 2, got {self.blend_steps}")
        if not self.lr > 0:
            raise VBayesError(f"lr must be > 0, got {self.lr}")


def check_image_data(data: Any, arch: str) -> tuple[int, int, int]:
    """The ``(C, H, W)`` of ``data``, or a :class:`~vbayes.errors.DataError` when the models cannot use it."""
    needed = ("x_train", "y_train", "x_val", "x_test", "y_test")
    if not all(hasattr(data, a) for a in needed) or getattr(data.x_train, "dim", lambda: 0)() != 4:
        name = getattr(data, "name", type(data).__name__)
        raise DataError(f"the auto-encoders need labelled image data (N, C, H, W); {name} is not")
    c, h, w = (int(s) for s in data.x_train.shape[1:])
    if arch == "conv" and (h % 4 or w % 4):
        raise DataError(f"the conv architecture needs height and width divisible by 4; {data.name} has {h}x{w}")
    if float(data.x_train.min()) < 0 or float(data.x_train.max()) > 1:
        raise DataError(f"{data.name}: pixels must lie in [0, 1] for the Bernoulli likelihood")
    if len(torch.unique(data.y_test)) < 2:
        raise DataError(f"{data.name}: the test split needs at least two classes to compare latent spaces")
    return c, h, w


def _finished_stage(out_dir: str | Path | None, key: str) -> Path | bool:
    """``out_dir/key/last.pt`` when an interrupted run left one there (training continues from it, or
    is skipped when it had finished), else False."""
    last = Path(out_dir) / key / "last.pt" if out_dir is not None else None
    return last if last is not None and last.is_file() else False


def train_models(cfg: CompareConfig, data: Any, out_dir: str | Path | None) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Train the AE, VAE and Bayesian AE with the same networks, code size and optimiser settings.

    The AE and VAE are trained by :func:`vbayes.studies.autoencoders.vae_run.train_autoencoder` (the runs of
    ``vbayes ae`` / ``vbayes vae``), the Bayesian AE by :func:`~vbayes.studies.autoencoders.fit.fit_bae`.
    Returns the trained models (eval mode) and per-model training facts and extra metrics. A
    model whose ``out_dir/<key>/last.pt`` exists (an interrupted run's) continues from it.
    """
    from vbayes.studies.autoencoders.vae_run import AutoencoderOptions, train_autoencoder

    models: dict[str, nn.Module] = {}
    facts: dict[str, Any] = {}
    for key in ("ae", "vae"):
        options = AutoencoderOptions(model=key, arch=cfg.arch, latent=cfg.latent, hidden=cfg.hidden, epochs=cfg.epochs,
                                     batch_size=cfg.batch_size, lr=cfg.lr, iw_samples=cfg.iw_samples, seed=cfg.seed,
                                     device=cfg.device, progress=cfg.progress)  # fmt: skip
        run = train_autoencoder(data, options, out_dir=Path(out_dir) / key if out_dir is not None else None,
                                run_config={"model": key, "compare": asdict(cfg)},
                                resume=_finished_stage(out_dir, key))  # fmt: skip
        models[key] = run.model.eval()
        keep = ("best_epoch", "seconds_per_epoch", "test_elbo", "test_nll")
        facts[key] = {k: run.metrics[k] for k in keep if k in run.metrics}
    torch.manual_seed(cfg.seed)
    bae = BayesianAE(cfg.arch, data.image_shape, cfg.latent, cfg.hidden, estimator=cfg.estimator)
    train_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                            device=cfg.device, progress=cfg.progress)  # fmt: skip
    fit = fit_bae(bae, data, train_cfg, out_dir=Path(out_dir) / "bae" if out_dir is not None else None,
                  run_config={"model": "bae", "compare": asdict(cfg)},
                  resume=_finished_stage(out_dir, "bae"))  # fmt: skip
    models["bae"] = bae.eval()
    facts["bae"] = {"best_epoch": fit.best_epoch, "seconds_per_epoch": fit.seconds_per_epoch,
                    "kl_per_example": float(bae.kl_per_example(len(data.x_train)).detach())}  # fmt: skip
    return models, facts


def _judge(ambiguity: Ambiguity, i: int) -> str:
    classes, shares = ambiguity.top2()
    a, b = int(classes[i, 0]), int(classes[i, 1])
    sa, sb = float(shares[i, 0]), float(shares[i, 1])
    return f"{a} ({sa:.0%})" + (f" / {b} ({sb:.0%})" if sb > 0 else "")


def choose_inputs(ambiguity: dict[str, Ambiguity], y: Tensor, show: int) -> list[tuple[int, str]]:
    """Test inputs to show: the most ambiguous for the Bayesian AE, then the VAE, then typical ones.

    Ambiguous: the reconstructions are split between the input's label ``y`` and one other
    digit, each with a share of at least ``AMBIGUOUS_SHARE`` (see :func:`find_ambiguous`).
    Returns ``[(index, reason), ...]`` of at most ``show`` distinct indices; ``reason`` is
    ``"ambiguous (bae)"``, ``"ambiguous (vae)"`` or ``"typical"`` (the first test digit of a
    class not shown yet).
    """
    chosen: list[tuple[int, str]] = []
    taken = torch.zeros(len(y), dtype=torch.bool)
    quota = {"bae": max(1, (show * 3) // 10), "vae": max(1, show // 5)}
    for key, k in quota.items():
        if key not in ambiguity:
            continue
        for idx, _, _, share in find_ambiguous(ambiguity[key], k, exclude=taken, labels=y):
            if share >= AMBIGUOUS_SHARE and len(chosen) < show:
                chosen.append((idx, f"ambiguous ({key})"))
                taken[idx] = True
    shown_classes = {int(y[i]) for i, _ in chosen}
    for cls in sorted(set(y.tolist())):
        if len(chosen) >= show:
            break
        if cls in shown_classes:
            continue
        idx = int((y == cls).nonzero()[0])
        if not taken[idx]:
            chosen.append((idx, "typical"))
            taken[idx] = True
    for idx in range(len(y)):  # fewer classes than slots: fill in order
        if len(chosen) >= show:
            break
        if not taken[idx]:
            chosen.append((idx, "typical"))
            taken[idx] = True
    return chosen


@torch.no_grad()
def _search(view: AutoencoderView, classifier: nn.Module, x: Tensor, n_samples: int) -> tuple[Ambiguity, ReconstructionSamples]:
    assert view.sample_code is not None
    counter = AmbiguityCounter(classifier, len(x))
    summary = sample_reconstructions(view.sample_code, view.decode_mean, x, n_samples, on_sample=counter)
    return counter.result(), summary


def compare_autoencoders(
    data: Any,
    latent: int = 2,
    epochs: int = 30,
    seed: int = 0,
    report: Any = None,
    *,
    out_dir: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Train an AE, a VAE and a Bayesian AE with matched networks and compare them.

    Args:
        data: an :class:`~vbayes.data.ImageData` (pixels in [0, 1], labels for the measurements).
        latent, epochs, seed: code size, training epochs and seed of all three models.
        report: a :class:`~vbayes.report.Report` to add the comparison's sections to, or ``None``
            (then no figure is drawn).
        out_dir: if given, each model's trainer writes ``out_dir/<key>/`` (``checkpoint.pt``,
            ``last.pt``, ``log.csv``).
        options: any other field of :class:`CompareConfig` (``arch``, ``hidden``, ``samples``, ...).

    Returns:
        ``{"ae": {...}, "vae": {...}, "bae": {...}, "ambiguous": [...], "classifier": {...},
        "config": {...}}``. Each model's object has ``knn_accuracy``, ``silhouette``,
        ``latent_mean``, ``latent_std``, ``blend_mean_change``, ``blend_max_change``,
        ``test_recon_nll`` (see :func:`~vbayes.studies.autoencoders.views.measure_latent_space`), and
        ``mean_predictive_std`` (pixel std over the model's randomness, 0 for the AE),
        ``best_epoch``, ``seconds_per_epoch``; the VAE's also ``test_elbo`` and ``test_nll``
        (importance-weighted, ``iw_samples``), the Bayesian AE's ``kl_per_example`` (KL of the
        weights / N) and ``test_elbo`` (nats per example). ``ambiguous`` lists the shown inputs
        with how each model's reconstructions were judged; ``ambiguity_summary`` counts the
        ambiguous searched inputs and their most frequent digit pairs per stochastic model.

    Raises:
        VBayesError: an invalid setting or data the models cannot use.
    """
    unknown = set(options) - {f.name for f in fields(CompareConfig)}
    if unknown:
        raise TypeError(f"compare_autoencoders: unknown option(s) {', '.join(sorted(unknown))}")
    cfg = CompareConfig(latent=latent, epochs=epochs, seed=seed, **options)
    cfg.check()
    check_image_data(data, cfg.arch)
    with torch.enable_grad():
        models, results = train_models(cfg, data, out_dir)
        device = next(models["ae"].parameters()).device
        judge = train_digit_classifier(data, epochs=cfg.classifier_epochs, seed=cfg.seed, device=device)
    with torch.no_grad():
        return _evaluate(models, judge, data, cfg, results, report)


def _evaluate(models: dict[str, nn.Module], judge: Any, data: Any, cfg: CompareConfig,
              results: dict[str, Any], report: Any) -> dict[str, Any]:
    device = next(models["ae"].parameters()).device
    x_test, y_test = data.x_test.to(device), data.y_test.cpu()
    x_train, y_train = data.x_train.to(device), data.y_train.cpu()
    views = {key: view_of(key, model) for key, model in models.items()}
    own_prob = judge.model.predict_proba(x_test).cpu().gather(1, y_test.view(-1, 1)).squeeze(1)
    pairs = blend_pairs(y_test, BLEND_CLASS_PAIRS, own_prob)
    metrics: dict[str, dict[str, Any]] = {}
    for key, view in views.items():
        measured = measure_latent_space(view, x_train, y_train, x_test, y_test, eval_targets(view.model, x_test),
                                        pairs, steps=cfg.blend_steps)  # fmt: skip
        metrics[key] = {**measured, "mean_predictive_std": 0.0, **results[key]}
    metrics["bae"]["test_elbo"] = -(metrics["bae"]["test_recon_nll"] + metrics["bae"]["kl_per_example"])
    n_search = len(x_test) if cfg.search_inputs is None else min(cfg.search_inputs, len(x_test))
    x_search, y_search = x_test[:n_search], y_test[:n_search]
    ambiguity: dict[str, Ambiguity] = {}
    ae_judged = Ambiguity(*_ae_judgement(views["ae"], judge.model, x_search))
    for key in ("bae", "vae"):
        torch.manual_seed(cfg.seed + 17)
        ambiguity[key], summary = _search(views[key], judge.model, x_search, cfg.search_samples)
        metrics[key]["mean_predictive_std"] = float(summary.std.mean())
    chosen = choose_inputs(ambiguity, y_search, cfg.show)
    rows = [{
        "#": n + 1, "test index": i, "label": int(y_search[i]), "chosen as": why,
        "input judged": _input_judgement(judge.model, x_search[i]),
        "AE recon judged": _judge(ae_judged, i), "VAE samples judged": _judge(ambiguity["vae"], i),
        "Bayesian AE samples judged": _judge(ambiguity["bae"], i),
    } for n, (i, why) in enumerate(chosen)]  # fmt: skip
    out = {key: metrics[key] for key in MODEL_KEYS}
    out["ambiguous"] = rows
    out["ambiguity_summary"] = _ambiguity_summary(ambiguity, y_search)
    out["classifier"] = {"val_accuracy": judge.val_accuracy, "test_accuracy": judge.test_accuracy,
                         "epochs": judge.epochs}  # fmt: skip
    out["config"] = asdict(cfg)
    if report is not None:
        from vbayes.studies.autoencoders.compare_report import add_comparison

        torch.manual_seed(cfg.seed + 29)
        add_comparison(report, views, data, cfg, out, [i for i, _ in chosen], pairs[:2])
    return out


def _ae_judgement(view: AutoencoderView, classifier: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    probs = torch.cat([torch.softmax(classifier(view.decode_mean(view.point_code(x[i : i + 2048]))), 1)
                       for i in range(0, len(x), 2048)]).cpu()  # fmt: skip
    one_hot = nn.functional.one_hot(probs.argmax(1), probs.shape[1]).double()
    return one_hot, probs


def _input_judgement(classifier: nn.Module, x: Tensor) -> str:
    probs = torch.softmax(classifier(x.unsqueeze(0)), 1)[0]
    top = probs.topk(2)
    a, b = int(top.indices[0]), int(top.indices[1])
    return f"{a} ({float(top.values[0]):.0%})" + (f" / {b} ({float(top.values[1]):.0%})" if top.values[1] >= 0.05 else "")


def _ambiguity_summary(ambiguity: dict[str, Ambiguity], y: Tensor) -> dict[str, Any]:
    """Per model: how many searched inputs are ambiguous (split between their label and another
    digit, both shares >= ``AMBIGUOUS_SHARE``) and the most frequent digit pairs."""
    summary: dict[str, Any] = {}
    for key, amb in ambiguity.items():
        classes, shares = amb.pairs(y)
        mask = shares.min(1).values >= AMBIGUOUS_SHARE
        pairs: dict[str, int] = {}
        for a, b in classes[mask].tolist():
            name = f"{min(a, b)}/{max(a, b)}"
            pairs[name] = pairs.get(name, 0) + 1
        top = dict(sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
        summary[key] = {"searched": len(y), "ambiguous": int(mask.sum()), "threshold": AMBIGUOUS_SHARE,
                        "top_pairs": top}  # fmt: skip
    return summary
