"""``vbayes.cli.config.command_line``: a parsed namespace back into the command line that gives it."""

from __future__ import annotations

import argparse
import os
import shlex

import pytest

from vbayes.cli import build_parser
from vbayes.cli.commands._common import positive_float, widths
from vbayes.cli.config import command_line, install_config_option, repeat_command


def _sub(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]


@pytest.mark.parametrize("argv", [
    ["vae", "--data-dir", "some/where", "--likelihood", "gaussian", "--gaussian-std", "0.1", "--no-progress"],
    ["ae", "--latent", "3", "--early-stopping", "2", "--threads", "1"],
    ["bae", "--bayesian-decoder", "--posterior-std", "0.02", "--estimator", "lrt"],
    ["compare-ae", "--search-inputs", "7", "--lr", "0.0003"],
    ["uq", "--data", "toy-gap", "--hidden", "100,100", "--noise", "fixed", "--noise-std", "0.3"],
])  # fmt: skip
def test_every_resumable_command_repeats_to_the_same_namespace(argv: list[str], tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    parser = build_parser()
    args = parser.parse_args([*argv, "--out", "run", "--overwrite"])
    line = repeat_command(args)
    again = parser.parse_args(shlex.split(line)[1:])
    assert shlex.split(line)[:2] == ["vbayes", argv[0]]
    assert "--overwrite" not in line and "--resume" not in line
    expected = dict(vars(args), out=os.path.abspath("run"), overwrite=False)
    if args.data_dir is not None:
        expected["data_dir"] = os.path.abspath(args.data_dir)
    assert vars(again) == expected


def test_defaults_are_spelled_out_and_none_values_left_out() -> None:
    args = _sub("ae").parse_args([])
    argv = shlex.split(command_line(_sub("ae"), args, "vbayes ae"))
    assert argv[argv.index("--epochs") + 1] == "30" and argv[argv.index("--lr") + 1] == "0.001"
    assert "--gaussian-std" not in argv and "--threads" not in argv and "--no-progress" not in argv


def test_a_config_file_is_spelled_out_not_named(tmp_path) -> None:
    config = tmp_path / "run.json"
    config.write_text('{"epochs": 4, "no-progress": true}')
    parser = _sub("vae")
    args = parser.parse_args(["--config", str(config), "--latent", "5"])
    argv = shlex.split(command_line(parser, args, "vbayes vae"))
    assert "--config" not in argv and "--no-progress" in argv
    assert argv[argv.index("--epochs") + 1] == "4" and argv[argv.index("--latent") + 1] == "5"


def test_a_small_parser_round_trips_every_kind_of_option() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=positive_float, default=0.1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--widths", type=widths, default=(3, 4))
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--colour", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--name", default=None)
    install_config_option(parser)
    args = parser.parse_args(["--rate", "0.30000000000000004", "--sizes", "5", "6", "7", "--quiet", "--no-colour"])
    line = command_line(parser, args, "tool")
    assert line == "tool --rate 0.30000000000000004 --sizes 5 6 7 --widths 3,4 --quiet --no-colour"
    assert vars(parser.parse_args(shlex.split(line)[1:])) == vars(args)
