"""Run inference methods on one data set and score them with the same metrics.

The pipeline standardises inputs and regression targets on the training split, fits each
method on the standardised data, maps its predictions back to the original scale
(``mu * std_y + mean_y``, ``sigma * std_y``) and scores them there. A method that raises,
reports ``info["error"]`` or predicts non-finite values is recorded as ``{"error": ...}`` and
the other methods still run.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vbayes.data.tabular import ClassificationData, RegressionData, Standardizer
from vbayes.errors import VBayesError
from vbayes.files import json_ready
from vbayes.metrics import CLASSIFICATION, REGRESSION, auroc_ood, mutual_information, predictive_entropy
from vbayes.methods.predictive import ClassificationPrediction, RegressionPrediction

MethodFactory = Callable[..., Any]
#: diagnostics copied from ``method.info`` to the top level of a method's metrics
DIAGNOSTICS = ("rhat_max", "ess_min", "divergences", "warmup_divergences", "accept_rate", "step_size", "n_samples",
               "elbo", "elbo_se", "converged", "steps",
               "energy",  # bbalpha
               "objective", "objective_se", "sparsity", "compression",  # vd
               "nn_elbo", "kl_nn", "weight_spread", "weight_spread_init",  # bbh
               "reverted_updates")  # pbp


def default_factory() -> MethodFactory:
    """:func:`vbayes.methods.get_method` (imported lazily: methods sit beside this layer)."""
    from vbayes.methods import get_method

    return get_method


def resolve_methods(spec: str | Sequence[str]) -> list[str]:
    """Method names from ``"all"``, ``"a,b"`` or a sequence; :class:`VBayesError` for unknown names."""
    from vbayes.methods import METHOD_NAMES

    names = list(METHOD_NAMES) if spec == "all" else (
        [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec)
    )
    if not names:
        raise VBayesError("--methods is empty; give 'all' or a comma-separated list")
    unknown = [n for n in names if n not in METHOD_NAMES]
    if unknown:
        raise VBayesError(f"unknown method {unknown[0]!r}; choose 'all' or from: {', '.join(METHOD_NAMES)}")
    return list(dict.fromkeys(names))


@dataclass
class MethodResult:
    """One method on one data set.

    Attributes:
        metrics: JSON-ready figures (metric keys, ``fit_seconds``, ``predict_seconds``,
            diagnostics) or ``{"error": message, ...}``.
        predictions: named predictions on the original scale (``"test"``, ``"grid"``,
            ``"train"``, ``"ood:<set>"`` ...); empty after an error.
    """

    metrics: dict[str, Any]
    predictions: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """``True`` unless the method failed."""
        return "error" not in self.metrics


def _diagnostics(info: dict[str, Any]) -> dict[str, Any]:
    out = {k: json_ready(info[k]) for k in DIAGNOSTICS if k in info}
    return {k: v for k, v in out.items() if v is not None or k in ("rhat_max", "ess_min")}


def _error_message(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    return f"{type(err).__name__}: {text}{where}"


def _fit(factory: MethodFactory, name: str, x: Tensor, y: Tensor, kwargs: dict[str, Any]) -> tuple[Any, float]:
    method = factory(name, **kwargs)
    start = time.perf_counter()
    method.fit(x, y)
    return method, time.perf_counter() - start


def _unscale(pred: RegressionPrediction, y_scaler: Standardizer) -> RegressionPrediction:
    mean, std = y_scaler.mean.double(), y_scaler.std.double()
    return RegressionPrediction(pred.mu.double() * std + mean, pred.sigma.double() * std, pred.info)


def epistemic_ratio(at: RegressionPrediction, reference: RegressionPrediction) -> float | None:
    """Mean epistemic std at the inputs of ``at`` over the mean epistemic std at ``reference``'s
    inputs; ``None`` when the reference has no epistemic part (one sample, zero variance)."""
    ref = float(reference.epistemic_var.sqrt().mean())
    if not ref > 0:
        return None
    return float(at.epistemic_var.sqrt().mean()) / ref


def target_scaler(data: RegressionData) -> Standardizer:
    """The standardisation :func:`fit_regression` applies to ``data``'s targets: the data's own
    ``meta["y_scaler"]`` (UCI), else fitted on the training targets (population std)."""
    return data.meta.get("y_scaler") or Standardizer.fit(data.y_train)


def target_scale(data: RegressionData) -> float:
    """The training targets' std of :func:`target_scaler`: the unit of "standardised" distances."""
    return float(target_scaler(data).std.reshape(-1)[0])


def fit_regression(
    name: str,
    data: RegressionData,
    factory: MethodFactory | None = None,
    *,
    hidden: Sequence[int] = (50,),
    epochs: int | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    extra_inputs: dict[str, Tensor] | None = None,
    noise: str | None = None,
    noise_std: float | None = None,
) -> MethodResult:
    """Fit method ``name`` on ``data`` (standardised on its training split) and score it.

    Metrics (original scale) are the keys of :data:`vbayes.metrics.REGRESSION`, plus
    ``fit_seconds``, ``predict_seconds`` (the test set) and HMC diagnostics. Predictions are
    kept for ``"test"``, ``"train"``, ``"grid"`` (when ``data.x_grid``) and each of
    ``extra_inputs`` (``(M, D)`` tensors). Toy-gap data (``meta["gap_middle"]``) also get
    ``gap_epistemic_ratio`` and ``extrapolation_epistemic_ratio``. ``train_noise_std`` is the
    root-mean-square aleatoric std the method predicts at the training inputs (data units).

    ``noise`` / ``noise_std`` set the method's noise options (:mod:`vbayes.methods.noise`) unless
    ``options`` does; ``noise_std`` is in the data's units and divided by the targets' training
    std here, since the method sees standardised targets.
    """
    factory = factory or default_factory()
    x_sc = data.meta.get("x_scaler") or Standardizer.fit(data.x_train)
    y_sc = target_scaler(data)
    inputs = {"train": data.x_train, **({"grid": data.x_grid} if data.x_grid is not None else {})}
    if "gap_middle" in data.meta:
        inputs["gap"] = torch.tensor([[float(data.meta["gap_middle"])]])
        inputs["extrapolation"] = torch.tensor(data.meta["extrapolation"], dtype=torch.float32)[:, None]
    inputs.update(extra_inputs or {})
    options = dict(options or {})
    epochs = options.pop("epochs", epochs)  # a per-method epochs (--option NAME.epochs=E) wins
    if noise is not None:
        options.setdefault("noise", noise)
    if noise_std is not None:
        options.setdefault("noise_std", float(noise_std) / float(y_sc.std.reshape(-1)[0]))
    kwargs = dict(task="regression", hidden=tuple(hidden), epochs=epochs, seed=seed, **options)
    try:
        method, fit_s = _fit(factory, name, x_sc.transform(data.x_train), y_sc.transform(data.y_train), kwargs)
        info = dict(getattr(method, "info", {}) or {})
        if info.get("error"):
            return MethodResult({"error": str(info["error"]), "fit_seconds": fit_s, **_diagnostics(info)})
        start = time.perf_counter()
        test = _unscale(method.predict(x_sc.transform(data.x_test)), y_sc)
        predict_s = time.perf_counter() - start
        preds = {"test": test}
        preds.update({k: _unscale(method.predict(x_sc.transform(v)), y_sc) for k, v in inputs.items()})
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # noqa: BLE001 - one failing method must not stop the comparison
        return MethodResult({"error": _error_message(err)})
    for key, p in preds.items():
        if not (torch.isfinite(p.mu).all() and torch.isfinite(p.sigma).all() and (p.sigma > 0).all()):
            return MethodResult({"error": f"non-finite or non-positive predictions on {key}", "fit_seconds": fit_s,
                                 **_diagnostics(info)})
    metrics: dict[str, Any] = {key: spec.function(test, data.y_test.double()) for key, spec in REGRESSION.items()}
    if "gap" in preds:
        metrics["gap_epistemic_ratio"] = epistemic_ratio(preds["gap"], preds["train"])
        metrics["extrapolation_epistemic_ratio"] = epistemic_ratio(preds["extrapolation"], preds["train"])
    metrics["train_noise_std"] = float(preds["train"].aleatoric_var.mean().sqrt())  # data units
    metrics.update(fit_seconds=fit_s, predict_seconds=predict_s)
    metrics.update(_diagnostics({**info, **dict(getattr(method, "info", {}) or {})}))
    return MethodResult({k: json_ready(v) for k, v in metrics.items()}, preds)


def fit_classification(
    name: str,
    data: ClassificationData,
    factory: MethodFactory | None = None,
    *,
    hidden: Sequence[int] = (50,),
    epochs: int | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> MethodResult:
    """Fit method ``name`` on ``data`` and score it: the keys of
    :data:`vbayes.metrics.CLASSIFICATION`, ``auroc_entropy`` / ``auroc_mi`` (test inputs against
    all OOD sets together, OOD positive) and ``auroc_by_set``, timings and diagnostics.

    Tabular inputs are standardised on the training split; image pixels stay in [0, 1].
    """
    factory = factory or default_factory()
    options = dict(options or {})
    epochs = options.pop("epochs", epochs)  # a per-method epochs (--option NAME.epochs=E) wins
    scale = data.image_shape is None
    x_sc = Standardizer.fit(data.x_train) if scale else None
    tf = (lambda x: x_sc.transform(x)) if x_sc is not None else (lambda x: x.float())  # noqa: E731
    kwargs = dict(task="classification", n_classes=data.n_classes, hidden=tuple(hidden), epochs=epochs,
                  seed=seed, **options)
    try:
        method, fit_s = _fit(factory, name, tf(data.x_train), data.y_train, kwargs)
        info = dict(getattr(method, "info", {}) or {})
        if info.get("error"):
            return MethodResult({"error": str(info["error"]), "fit_seconds": fit_s, **_diagnostics(info)})
        start = time.perf_counter()
        test = method.predict(tf(data.x_test))
        predict_s = time.perf_counter() - start
        preds: dict[str, ClassificationPrediction] = {"test": test}
        preds.update({f"ood:{k}": method.predict(tf(v)) for k, v in data.x_ood.items()})
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # noqa: BLE001
        return MethodResult({"error": _error_message(err)})
    for key, p in preds.items():
        if not torch.isfinite(p.probs).all():
            return MethodResult({"error": f"non-finite probabilities on {key}", "fit_seconds": fit_s})
    metrics: dict[str, Any] = {k: spec.function(test, data.y_test) for k, spec in CLASSIFICATION.items()}
    ent_in, mi_in = predictive_entropy(test), mutual_information(test)
    by_set = {}
    outs = [k for k in preds if k.startswith("ood:")]
    for k in outs:
        by_set[k[4:]] = {
            "entropy": auroc_ood(ent_in, predictive_entropy(preds[k])),
            "mi": auroc_ood(mi_in, mutual_information(preds[k])),
        }
    if outs:
        metrics["auroc_entropy"] = auroc_ood(ent_in, torch.cat([predictive_entropy(preds[k]) for k in outs]))
        metrics["auroc_mi"] = auroc_ood(mi_in, torch.cat([mutual_information(preds[k]) for k in outs]))
    metrics.update(fit_seconds=fit_s, predict_seconds=predict_s)
    metrics.update(_diagnostics({**info, **dict(getattr(method, "info", {}) or {})}))
    metrics = {k: json_ready(v) for k, v in metrics.items()}
    metrics["auroc_by_set"] = by_set
    return MethodResult(metrics, preds)


def run_methods(
    methods: Sequence[str],
    data: RegressionData | ClassificationData,
    factory: MethodFactory | None = None,
    *,
    progress: bool = True,
    desc: str | None = None,
    method_options: dict[str, dict[str, Any]] | None = None,
    **kwargs: Any,
) -> dict[str, MethodResult]:
    """Fit every method on ``data`` (regression or classification by the data's type), with a
    tqdm bar over methods; ``method_options`` maps a method name to its options (e.g.
    ``{"hmc": {"num_samples": 200}}``); other keyword arguments go to :func:`fit_regression` /
    :func:`fit_classification`."""
    fit = fit_regression if isinstance(data, RegressionData) else fit_classification
    if fit is fit_classification:
        noise_options = (kwargs.pop("noise", None), kwargs.pop("noise_std", None))
        if noise_options != (None, None):
            raise VBayesError("noise options apply to regression data only")
    results: dict[str, MethodResult] = {}
    bar = tqdm(list(methods), desc=desc or data.name, disable=not progress, leave=False)
    for name in bar:
        bar.set_postfix_str(name)
        results[name] = fit(name, data, factory, options=(method_options or {}).get(name), **kwargs)
    bar.close()
    return results
