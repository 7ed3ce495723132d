"""``vbayes uq``: compare inference methods on one data set; writes metrics.json, figures and report.html."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from vbayes.cli.config import repeat_command
from vbayes.cli.commands._common import add_run_args, positive_float, positive_int, prepare_out, widths
from vbayes.errors import VBayesError


def register(subparsers: argparse._SubParsersAction) -> None:
    from vbayes.methods.noise import NOISE_KINDS
    from vbayes.studies.uq.experiment import DATA_SETS

    parser = subparsers.add_parser(
        "uq", help="compare inference methods (uncertainty, calibration, UCI benchmark)",
        description="Run inference methods on one data set and score them with the same metrics. With hmc among "
        "the methods on regression data (e.g. --data cubic-gap --methods all) every method is also held against "
        "HMC's predictive: w2_to_reference per method and the findings of Yao et al. (2019) in metrics.json and "
        "the report.",
    )
    parser.add_argument("--data", required=True, metavar="NAME", help=f"one of: {', '.join(DATA_SETS)}")
    parser.add_argument("--methods", default="all", help="'all' or comma-separated method names (default all)")
    parser.add_argument("--splits", type=positive_int, default=None, help="UCI: run the first N splits (default all)")
    parser.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default: each method's)")
    parser.add_argument("--hidden", type=widths, default=None,
                        help="hidden widths, e.g. 50 or 100,100 (default 50; UCI: n_hidden.txt)")
    parser.add_argument("--noise", choices=NOISE_KINDS, default=None,
                        help="regression noise of every method (default: each method's; hmc takes homoscedastic "
                        "or fixed)")
    parser.add_argument("--noise-std", type=positive_float, default=None, metavar="STD",
                        help="the known noise std with --noise fixed, else the learned noise's initial value; in "
                        "the targets' units")
    parser.add_argument("--option", dest="method_option", nargs="+", type=method_option, default=None,
                        metavar="METHOD.KEY=VALUE",
                        help="a method's own option, e.g. pbp.epochs=400 mvg.pseudo_data=5 bbh.kl_estimator=nn "
                        "(VALUE read as JSON when it parses, else as text; see each method's options)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_run_args(parser, default_out="runs/uq", resumable=True)
    parser.set_defaults(func=run)


def method_option(text: str) -> str:
    """argparse type of ``--option``: the text ``METHOD.KEY=VALUE``, checked for its shape."""
    name, sep, _ = text.partition("=")
    method, dot, key = name.partition(".")
    if not (sep and dot and method and key):
        raise argparse.ArgumentTypeError(f"expected METHOD.KEY=VALUE (e.g. pbp.epochs=400), got {text!r}")
    return text


def method_options(texts: list[str] | None, methods: list[str], task: str) -> dict[str, dict[str, Any]]:
    """``{method: {key: value}}`` from ``--option`` texts; each VALUE is JSON when it parses
    (``5``, ``0.1``, ``true``, ``null``), else the text. Every option is checked now, by building
    the method for ``task``: a method not among ``methods`` or an unknown or bad option raises
    :class:`VBayesError` before anything runs."""
    from vbayes.methods import get_method

    out: dict[str, dict[str, Any]] = {}
    for text in texts or []:
        name, _, raw = text.partition("=")
        method, _, key = name.partition(".")
        if method not in methods:
            raise VBayesError(f"--option {text}: {method!r} is not among --methods ({', '.join(methods)})")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(method, {})[key] = value
    for method, options in out.items():
        epochs = options.get("epochs")
        if "epochs" in options and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise VBayesError(f"--option {method}.epochs must be an integer >= 1, got {epochs!r}")
        get_method(method, task=task, **{k: v for k, v in options.items() if k != "epochs"})
    return out


def run(args: argparse.Namespace) -> int:
    from vbayes.cli.commands._common import resolve_device
    from vbayes.studies.uq.experiment import REGRESSION_SETS, load_experiment_data
    from vbayes.studies.uq.pipeline import resolve_methods


    if resolve_device(args.device).type != "cpu":
        raise VBayesError("vbayes uq runs on the CPU only (the inference methods take no device); drop --device")
    methods = resolve_methods(args.methods)
    if args.noise == "fixed" and args.noise_std is None:
        raise VBayesError("--noise fixed needs --noise-std (the known noise std, in the targets' units)")
    loaded = load_experiment_data(args.data, args.seed, args.data_dir)  # bad data fails before --out is touched
    from vbayes.data.tabular import ClassificationData

    task = "classification" if isinstance(loaded, ClassificationData) else "regression"
    options = method_options(args.method_option, methods, task)
    if (args.noise or args.noise_std) and args.data not in (*REGRESSION_SETS, 'uci'):
        raise VBayesError(f"--noise and --noise-std apply to regression data ({', '.join((*REGRESSION_SETS, 'uci'))})")
    from vbayes.cli.runs import STAGES, stage_run
    from vbayes.studies.uq.experiment import run_uq

    created = not os.path.exists(args.out)
    out = prepare_out(args.out, args.overwrite, resume=args.resume)
    command = repeat_command(args)
    # the previous run stays until this one has finished; finished methods stay for --resume
    with stage_run(out, created, args.resume, args.overwrite, command) as staged:
        metrics = run_uq(
            args.data, methods, staged.staging, data_dir=args.data_dir, splits=args.splits, epochs=args.epochs,
            seed=args.seed, hidden=args.hidden, progress=not args.no_progress, noise=args.noise,
            noise_std=args.noise_std, command=command, stage_dir=staged.staging / STAGES, method_options=options,
        )
    found = metrics.pop("findings", None)
    failed = [k for k, m in metrics.items() if "error" in m]
    for line in summary_lines(metrics) + findings_lines(found):
        print(line)
    print(f"wrote {out / 'metrics.json'}, {out / 'report.html'} ({len(metrics) - len(failed)} methods ok"
          + (f"; failed: {', '.join(failed)}" if failed else "") + ")")
    return 0


SUMMARY_KEYS = ("rmse", "nll", "picp95", "gap_epistemic_ratio", "extrapolation_epistemic_ratio",
                "accuracy", "ece", "auroc_mi", "elbo", "w2_to_reference", "rhat_max", "fit_seconds")  # fmt: skip


def findings_lines(found: dict[str, object] | None) -> list[str]:
    """The study's verdicts, one line each (nothing when the run had no study)."""
    if not found:
        return []
    if "verdict" in found:
        return [f"findings: {found['verdict']}"]
    return [f"findings: {key}: {found[key]['verdict']}" for key in ("calibration", "structure", "ensembles", "gaussian")
            if isinstance(found.get(key), dict)]


def summary_lines(metrics: dict[str, dict[str, object]]) -> list[str]:
    """One table row per method with the headline figures present in ``metrics`` (UCI: split means)."""
    keys = [k for k in SUMMARY_KEYS if any(isinstance(m.get(k), (int, float)) for m in metrics.values())]
    short = {"gap_epistemic_ratio": "gap_ratio", "extrapolation_epistemic_ratio": "beyond_ratio",
             "w2_to_reference": "w2_to_hmc"}
    lines = [f"{'method':<10}" + "".join(f"{short.get(k, k):>13}" for k in keys)]
    for name, m in metrics.items():
        if "error" in m:
            lines.append(f"{name:<10} failed: {m['error']}")
            continue
        cells = [m.get(k) for k in keys]
        lines.append(f"{name:<10}" + "".join(f"{c:>13.4g}" if isinstance(c, (int, float)) else f"{'-':>13}" for c in cells))
    return lines
